// Keyboard and mouse: the coordinate maths between the page and the video (pure, exported for tests) and the
// listeners. Drawing on the frame: drag = box (rubber band), corner handles resize and a drag inside moves the active
// track's box (unsaved, or its saved keyframe's on this frame), click = + point, shift-click = - point.
import { addClick, editableBox, placeBox } from "./state.js";

// A point of the page (clientX/Y) in video pixels, on a canvas of the video's size shown at `rect` (its
// getBoundingClientRect(): any zoom, any offset), clamped to the frame.
export function clientToVideo(clientX, clientY, rect, width, height) {
  const x = (clientX - rect.left) * width / rect.width, y = (clientY - rect.top) * height / rect.height;
  return [Math.max(0, Math.min(width - 1, x)), Math.max(0, Math.min(height - 1, y))];
}

// Video pixels per screen pixel: handles, slack and line widths are sized in screen pixels.
export function screenScale(width, rect) { return width / rect.width; }

// A box's corners in the order the resize code numbers them: [x1y1, x2y1, x1y2, x2y2].
export function corners(b) { return [[b[0], b[1]], [b[2], b[1]], [b[0], b[3]], [b[2], b[3]]]; }

// What a press at (x, y) does to an editable box: {mode: "resize", corner} within 10 screen pixels of a corner,
// {mode: "move"} inside it, null elsewhere (a new box or a point).
export function pressOnBox(box, x, y, scale) {
  const cs = corners(box);
  for (let i = 0; i < 4; i++) {
    if (Math.abs(cs[i][0] - x) < 10 * scale && Math.abs(cs[i][1] - y) < 10 * scale) return { mode: "resize", corner: i };
  }
  if (x >= box[0] && x <= box[2] && y >= box[1] && y <= box[3]) return { mode: "move" };
  return null;
}

// A drag: mode "new" (rubber band from the press point), "resize" (corner `corner` of `box` follows the mouse),
// "move" (the whole box follows it). Resize and move add the mouse's travel to the box's own edges, so a box is
// never shifted by the distance between the press and the exact corner.
export function dragBox(d, width, height) {
  if (d.mode === "new") {
    return [Math.min(d.x0, d.x1), Math.min(d.y0, d.y1), Math.max(d.x0, d.x1), Math.max(d.y0, d.y1)];
  }
  const dx = Math.round(d.x1 - d.x0), dy = Math.round(d.y1 - d.y0), b = d.box;
  if (d.mode === "move") {
    const mx = Math.max(-b[0], Math.min(width - b[2], dx));  // the box stays inside the frame
    const my = Math.max(-b[1], Math.min(height - b[3], dy));
    return [b[0] + mx, b[1] + my, b[2] + mx, b[3] + my];
  }
  const e = b.slice();
  const xi = d.corner % 2 === 0 ? 0 : 2, yi = d.corner < 2 ? 1 : 3;
  e[xi] = Math.max(0, Math.min(width, b[xi] + dx));
  e[yi] = Math.max(0, Math.min(height, b[yi] + dy));
  return [Math.min(e[0], e[2]), Math.min(e[1], e[3]), Math.max(e[0], e[2]), Math.max(e[1], e[3])];
}

// The box a finished drag gives, in video pixels (a new box covers the pixels under both ends: x2/y2 exclusive).
export function finalBox(d, width, height) {
  if (d.mode !== "new") return dragBox(d, width, height);
  const [x1, y1, x2, y2] = dragBox(d, width, height).map((v) => Math.round(v));
  return [x1, y1, Math.min(width, x2 + 1), Math.min(height, y2 + 1)];
}

// Until the mouse travels a few screen pixels a press is a click (a + or - point, also on a handle or in a box).
export function hasMoved(d, scale) {
  const slack = (d.mode === "resize" ? 3 : 6) * scale;
  return Math.abs(d.x1 - d.x0) + Math.abs(d.y1 - d.y0) > slack;
}

// The end of a drag as a change of the unsaved seeds: the event to emit {name, detail}, {message} when nothing can
// be drawn, or null when the drag gives nothing (another frame by now, a box under 3 pixels).
export function finishDrag(S, d, width, height) {
  if (S.active === null) return { message: "Create or select a track first." };
  if (d.frame !== S.frame) return null;
  if (d.moved) {
    const b = finalBox(d, width, height);
    if (b[2] - b[0] < 3 || b[3] - b[1] < 3) return null;
    placeBox(S, d.frame, b, d.mode !== "new");
    return { name: "box", detail: { frame: d.frame, track_id: S.active, box: b } };
  }
  const click = addClick(S, d.frame, d.x0, d.y0, !d.shift);
  return { name: "click", detail: { frame: d.frame, track_id: S.active, x: click[0], y: click[1], positive: click[2] } };
}

// Keys typed into a text field are the person's text; a ticked checkbox keeps the keys for the viewer.
export function isTyping(target) {
  const tag = target && target.tagName ? target.tagName.toLowerCase() : "";
  const field = tag === "input" && !["checkbox", "radio", "button", "range"].includes(target.type);
  return field || tag === "textarea" || tag === "select" || !!(target && target.isContentEditable);
}

// What a key does in the viewer: {step: frames}, or "play", "save", "track", "next", "escape"; null for other keys.
export function keyAction(e) {
  const step = e.shiftKey ? 10 : 1;
  if (e.key === "ArrowRight") return { step };
  if (e.key === "ArrowLeft") return { step: -step };
  if (e.key === " ") return "play";
  if (e.key === "s" && !e.ctrlKey && !e.metaKey) return "save";
  if (e.key === "t") return "track";
  if (e.key === "n") return "next";
  if (e.key === "Escape") return "escape";
  return null;
}

function clickButton(id) {
  const b = document.querySelector("#" + id);
  if (b) b.click();
}

// The listeners. V: the viewer (main.js) with its state S, elements and actions (seek, togglePlay, nextTrack, ...).
export function bindInput(V) {
  const { S, canvas, root } = V;
  document.addEventListener("keydown", (e) => {
    if (isTyping(e.target)) return;
    if (!S.dataset || !root.isConnected || root.offsetParent === null) return; // not on the visible tab
    const action = keyAction(e);
    if (action === null) return;
    if (action === "escape") { S.drag = null; V.schedulePaint(); return; }
    e.preventDefault();
    if (action.step) { S.keyAt = performance.now(); V.seek(S.frame + action.step); }
    else if (action === "play") V.togglePlay();
    else if (action === "save") clickButton("save-button");
    else if (action === "track") clickButton("track-button");
    else if (action === "next") V.nextTrack();
  });

  const toVideo = (e) => clientToVideo(e.clientX, e.clientY, canvas.getBoundingClientRect(), canvas.width,
    canvas.height);
  canvas.addEventListener("mousedown", (e) => {
    if (!S.dataset || e.button !== 0) return;
    e.preventDefault();
    const [x, y] = toVideo(e);
    const start = { x0: x, y0: y, x1: x, y1: y, moved: false, frame: S.frame, shift: e.shiftKey, mode: "new" };
    const box = S.active !== null ? editableBox(S, S.active, S.frame) : null;
    // Inside the box a drag moves it; a click (no drag) is still a + or - point, as on a handle.
    const on = box ? pressOnBox(box, x, y, screenScale(canvas.width, canvas.getBoundingClientRect())) : null;
    S.drag = on ? Object.assign(start, on, { box: box.slice() }) : start;
  });
  window.addEventListener("mousemove", (e) => {
    if (!S.drag) return;
    const [x, y] = toVideo(e);
    S.drag.x1 = x; S.drag.y1 = y;
    if (hasMoved(S.drag, screenScale(canvas.width, canvas.getBoundingClientRect()))) S.drag.moved = true;
    V.schedulePaint();
  });
  window.addEventListener("mouseup", () => {
    const d = S.drag;
    if (!d) return;
    S.drag = null;
    const done = finishDrag(S, d, canvas.width, canvas.height);
    if (done && done.message) V.info.textContent = done.message;
    if (done && done.name) {
      V.writeBack();
      V.emit(done.name, done.detail);
      V.emit("pending", { pending: S.pending });
    }
    V.schedulePaint();
  });
}

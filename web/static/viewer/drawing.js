// Painting the frame canvas: the frame, every visible track's saved mask (filled, outlined), box and clicks, the
// unsaved seeds and preview masks, the rubber band, labels; then the timeline and the info line. The canvas has the
// video's size, so everything is drawn in video pixels; line widths and handles are scaled to stay the same on
// screen.
import { dragBox, corners } from "./input.js";
import { maskImage } from "./rle.js";
import { editableBox, trackById, unsavedCount } from "./state.js";
import { paintTimeline } from "./timeline.js";

const MAX_MASK_CANVASES = 400;

// A mask as a canvas the size of its bounding box, cached by key ({empty: true} for an empty mask).
function maskCanvas(S, key, counts, colour) {
  let entry = S.maskCanvases.get(key);
  if (entry) return entry;
  const image = maskImage(counts, S.dataset.width, S.dataset.height, colour);
  if (!image) {
    entry = { empty: true };
  } else {
    const c = document.createElement("canvas");
    c.width = image.w; c.height = image.h;
    c.getContext("2d").putImageData(new ImageData(new Uint8ClampedArray(image.pixels.buffer), image.w, image.h), 0, 0);
    entry = { canvas: c, x: image.x, y: image.y, w: image.w, h: image.h };
  }
  S.maskCanvases.set(key, entry);
  if (S.maskCanvases.size > MAX_MASK_CANVASES) S.maskCanvases.delete(S.maskCanvases.keys().next().value);
  return entry;
}

function drawClick(ctx, x, y, positive, scale, pending) {
  ctx.beginPath();
  ctx.arc(x, y, (pending ? 7 : 5) * scale, 0, 2 * Math.PI);
  ctx.fillStyle = positive ? "#28dc28" : "#e61e1e";
  ctx.fill();
  ctx.lineWidth = 2 * scale; ctx.strokeStyle = "#fff"; ctx.stroke();
}

function drawHandles(ctx, b, scale) {
  for (const [hx, hy] of corners(b)) {
    ctx.fillStyle = "#fff"; ctx.fillRect(hx - 5 * scale, hy - 5 * scale, 10 * scale, 10 * scale);
    ctx.strokeRect(hx - 5 * scale, hy - 5 * scale, 10 * scale, 10 * scale);
  }
}

// Saved features of frame f: masks of tracks not edited here, boxes (dashed for tracks neither active nor
// selected), handles on the active track's saved keyframe box, clicks. Returns the labels to write.
function drawSaved(V, f, scale) {
  const { S, ctx } = V;
  const labels = [];
  const pendingHere = S.pending[String(f)] || {};
  for (const feature of S.masks.get(f) || []) {
    const track = trackById(S, feature.track_id);
    if (!track || S.hidden.includes(track.id) || !feature.present) continue;
    const chosen = track.id === S.active || S.selected.includes(track.id);
    const edited = pendingHere[String(track.id)];
    let bx = edited && edited.box ? null : feature.box; // an unsaved box replaces the saved one on Save
    if (feature.counts && !edited) {
      const m = maskCanvas(S, track.id + ":" + f + ":" + S.revision, feature.counts, track.colour);
      if (!m.empty) {
        ctx.globalAlpha = chosen ? 1 : 0.75;
        ctx.drawImage(m.canvas, m.x, m.y);
        ctx.globalAlpha = 1;
        bx = bx || [m.x, m.y, m.x + m.w, m.y + m.h];
      }
    }
    if (bx) {
      ctx.lineWidth = (chosen ? 3 : 1.5) * scale;
      ctx.strokeStyle = track.colour;
      ctx.setLineDash(chosen ? [] : [6 * scale, 4 * scale]);
      if (feature.box || chosen) ctx.strokeRect(bx[0], bx[1], bx[2] - bx[0], bx[3] - bx[1]);
      ctx.setLineDash([]);
      if (bx === feature.box && editableBox(S, track.id, f) === feature.box) drawHandles(ctx, feature.box, scale);
      labels.push([track, bx, chosen]);
    }
    for (const [x, y, positive] of feature.clicks || []) drawClick(ctx, x, y, positive, scale, false);
  }
  return labels;
}

// Unsaved work on frame f: the seed preview's masks, then each seed's box (long dashes, handles on the active
// track's) and clicks. Adds their labels.
function drawPending(V, f, scale, labels) {
  const { S, ctx } = V;
  for (const [key, counts] of S.pendingMasks) {
    const [tid, pf] = key.split(":").map(Number);
    const track = trackById(S, tid);
    if (pf !== f || !track) continue;
    const m = maskCanvas(S, "p:" + key, counts, track.colour);
    if (!m.empty) ctx.drawImage(m.canvas, m.x, m.y);
  }
  for (const [tid, seed] of Object.entries(S.pending[String(f)] || {})) {
    const track = trackById(S, Number(tid));
    if (!track) continue;
    if (seed.box) {
      const [x1, y1, x2, y2] = seed.box;
      ctx.lineWidth = 3 * scale; ctx.strokeStyle = track.colour;
      ctx.setLineDash([10 * scale, 5 * scale]);
      ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
      ctx.setLineDash([]);
      if (track.id === S.active) drawHandles(ctx, seed.box, scale);
      labels.push([track, seed.box, track.id === S.active, "unsaved"]);
    }
    for (const [x, y, positive] of seed.clicks || []) drawClick(ctx, x, y, positive, scale, true);
  }
}

function drawLabels(ctx, labels, scale) {
  ctx.font = "bold " + Math.round(14 * scale) + "px sans-serif";
  for (const [track, bx, chosen, note] of labels) {
    const text = "#" + track.id + " " + track.label + (note ? " (" + note + ")" : "");
    const tw = ctx.measureText(text).width + 8 * scale, th = 18 * scale;
    const ty = bx[1] - th >= 0 ? bx[1] - th : bx[1];
    ctx.fillStyle = chosen ? track.colour : "rgba(0,0,0,0.6)";
    ctx.fillRect(bx[0], ty, tw, th);
    ctx.fillStyle = chosen ? "#000" : "#fff";
    ctx.fillText(text, bx[0] + 4 * scale, ty + 14 * scale);
  }
}

// One paint of the current frame. V: the viewer (main.js). Returns false when the frame's bitmap is not here yet
// (the caller asks for it; it is painted when it arrives).
export function paint(V) {
  const { S, ctx, canvas, root, info } = V;
  if (!S.dataset) { ctx.clearRect(0, 0, canvas.width, canvas.height); info.textContent = "Open a video to start."; return true; }
  const f = S.frame, bitmap = S.images.get(f);
  if (!bitmap) return false;
  const scale = canvas.width / Math.max(1, canvas.clientWidth || canvas.width);
  ctx.drawImage(bitmap, 0, 0);
  const labels = drawSaved(V, f, scale);
  drawPending(V, f, scale, labels);
  if (S.drag && S.drag.moved) {  // the rubber band: a new box, or the box being resized or moved
    const [x1, y1, x2, y2] = dragBox(S.drag, canvas.width, canvas.height);
    ctx.lineWidth = 2 * scale; ctx.strokeStyle = "#fff"; ctx.setLineDash([6 * scale, 4 * scale]);
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1); ctx.setLineDash([]);
  }
  drawLabels(ctx, labels, scale);
  root.dataset.frame = String(f);
  root.dataset.paintedFrame = String(f);
  root.dataset.overlaysFrame = S.masks.has(f) ? String(f) : "";  // saved boxes (and their handles) are drawn
  const ms = S.keyAt !== null ? performance.now() - S.keyAt : null;
  if (S.masks.has(f)) S.keyAt = null; // a key's time runs until the frame is shown with its overlays
  paintTimeline(V);
  const unsaved = unsavedCount(S.pending);
  info.textContent = "Frame " + f + " / " + (S.dataset.frame_count - 1) + (S.playing ? " (playing)" : "") +
    (S.active !== null ? " | drawing on track #" + S.active : " | create a track to draw") +
    (unsaved ? " | " + unsaved + " unsaved seed(s): press S to save" : "");
  V.emit("painted", { frame: f, ms, masks: S.masks.has(f) });
  return true;
}

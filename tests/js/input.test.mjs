// Coordinates between the page and the video, drags (new, resize, move), clicks and keys.
import assert from "node:assert/strict";
import test from "node:test";

import {
  clientToVideo, dragBox, finalBox, finishDrag, hasMoved, isTyping, keyAction, pressOnBox, screenScale,
} from "../../web/static/viewer/input.js";
import { createState, takeValue } from "../../web/static/viewer/state.js";

const W = 1280, H = 720;

test("page points map to video pixels at any zoom and offset", () => {
  // The 1280x720 canvas shown at half size (640x360) 100 px right and 50 px down, at 1:1, and at 1.5x, scrolled.
  for (const rect of [{ left: 100, top: 50, width: 640, height: 360 }, { left: 0, top: 0, width: 1280, height: 720 },
    { left: -300, top: -120, width: 1920, height: 1080 }]) {
    const zoom = rect.width / W;
    for (const [x, y] of [[0, 0], [640, 360], [1000.5, 20.25], [1279, 719]]) {
      const [vx, vy] = clientToVideo(rect.left + x * zoom, rect.top + y * zoom, rect, W, H);
      assert.ok(Math.abs(vx - x) < 1e-9 && Math.abs(vy - y) < 1e-9, `${x},${y} at zoom ${zoom}: ${vx},${vy}`);
    }
    assert.equal(screenScale(W, rect), 1 / zoom);
  }
});

test("points off the frame are clamped to its edge pixels", () => {
  const rect = { left: 100, top: 50, width: 640, height: 360 };
  assert.deepEqual(clientToVideo(0, 0, rect, W, H), [0, 0]);
  assert.deepEqual(clientToVideo(2000, 2000, rect, W, H), [W - 1, H - 1]);
  assert.deepEqual(clientToVideo(420, 10, rect, W, H), [640, 0]);
});

test("a press near a corner resizes (within 10 screen pixels), inside moves, outside draws", () => {
  const box = [100, 100, 300, 200];
  assert.deepEqual(pressOnBox(box, 295, 108, 1), { mode: "resize", corner: 1 });
  assert.deepEqual(pressOnBox(box, 104, 196, 1), { mode: "resize", corner: 2 });
  assert.equal(pressOnBox(box, 285, 108, 1).mode, "move");  // 15 px off at 1:1
  assert.deepEqual(pressOnBox(box, 285, 108, 2), { mode: "resize", corner: 1 });  // but 7.5 screen px at half size
  assert.equal(pressOnBox(box, 50, 50, 1), null);
});

test("a new box spans the press and the mouse, the end pixels included", () => {
  const d = { mode: "new", x0: 300.4, y0: 200.2, x1: 100.6, y1: 50.5 };
  assert.deepEqual(dragBox(d, W, H), [100.6, 50.5, 300.4, 200.2]);
  assert.deepEqual(finalBox(d, W, H), [101, 51, 301, 201]);
  assert.deepEqual(finalBox({ mode: "new", x0: 1270, y0: 710, x1: 1279, y1: 719 }, W, H), [1270, 710, 1280, 720]);
});

test("a resize moves one corner by the mouse's travel and keeps the box ordered and in the frame", () => {
  const box = [100, 100, 300, 200];
  // Pressed 3 px off the bottom-right corner: the corner moves by the travel, not to the press point.
  assert.deepEqual(dragBox({ mode: "resize", corner: 3, box, x0: 297, y0: 203, x1: 317, y1: 213 }, W, H),
    [100, 100, 320, 210]);
  // The top-left corner dragged past the opposite one: the box flips, still x1 < x2.
  assert.deepEqual(dragBox({ mode: "resize", corner: 0, box, x0: 100, y0: 100, x1: 400, y1: 150 }, W, H),
    [300, 150, 400, 200]);
  assert.deepEqual(dragBox({ mode: "resize", corner: 1, box, x0: 300, y0: 100, x1: 2000, y1: -50 }, W, H),
    [100, 0, W, 200]);
});

test("a move shifts the whole box and stops at the frame's edges", () => {
  const box = [100, 100, 300, 200];
  assert.deepEqual(dragBox({ mode: "move", box, x0: 150, y0: 150, x1: 170.4, y1: 139.6 }, W, H), [120, 90, 320, 190]);
  assert.deepEqual(dragBox({ mode: "move", box, x0: 150, y0: 150, x1: 0, y1: 1000 }, W, H), [0, 620, 200, 720]);
});

test("a press is a click until the mouse travels 6 screen pixels (3 on a handle)", () => {
  assert.equal(hasMoved({ mode: "new", x0: 0, y0: 0, x1: 3, y1: 3 }, 1), false);
  assert.equal(hasMoved({ mode: "new", x0: 0, y0: 0, x1: 4, y1: 3 }, 1), true);
  assert.equal(hasMoved({ mode: "new", x0: 0, y0: 0, x1: 4, y1: 3 }, 2), false);  // video pixels at half size
  assert.equal(hasMoved({ mode: "resize", x0: 0, y0: 0, x1: 2, y1: 2 }, 1), true);
});

function viewer(tracks = [{ id: 5, label: "x", colour: "#fff" }]) {
  const S = createState();
  takeValue(S, { dataset: { id: 1, frame_count: 10, width: W, height: H }, revision: 1, active: 5, tracks, seek: 2 });
  return S;
}

test("finishing a drag gives a click, a box, or nothing", () => {
  const S = viewer();
  const click = finishDrag(S, { mode: "new", moved: false, frame: 2, shift: true, x0: 10.26, y0: 20 }, W, H);
  assert.deepEqual(click, { name: "click", detail: { frame: 2, track_id: 5, x: 10.3, y: 20, positive: false } });
  const box = finishDrag(S, { mode: "new", moved: true, frame: 2, x0: 10, y0: 20, x1: 60, y1: 90 }, W, H);
  assert.deepEqual(box, { name: "box", detail: { frame: 2, track_id: 5, box: [10, 20, 61, 91] } });
  assert.deepEqual(S.pending, { "2": { "5": { box: [10, 20, 61, 91], clicks: [[10.3, 20, false]] } } });
  assert.equal(finishDrag(S, { mode: "new", moved: true, frame: 2, x0: 10, y0: 20, x1: 11, y1: 90 }, W, H), null);
  assert.equal(finishDrag(S, { mode: "new", moved: false, frame: 3, x0: 1, y0: 1 }, W, H), null);  // frame changed
  assert.deepEqual(finishDrag(viewer([]), { mode: "new", moved: false, frame: 2, x0: 1, y0: 1 }, W, H),
    { message: "Create or select a track first." });
});

test("keys: arrows step (10 with shift), letters act, text fields keep their keys", () => {
  assert.deepEqual(keyAction({ key: "ArrowRight" }), { step: 1 });
  assert.deepEqual(keyAction({ key: "ArrowLeft", shiftKey: true }), { step: -10 });
  assert.deepEqual([" ", "s", "t", "n", "Escape", "x"].map((key) => keyAction({ key })),
    ["play", "save", "track", "next", "escape", null]);
  assert.equal(keyAction({ key: "s", ctrlKey: true }), null);  // the browser's save
  assert.equal(isTyping({ tagName: "INPUT", type: "text" }), true);
  assert.equal(isTyping({ tagName: "INPUT", type: "checkbox" }), false);
  assert.equal(isTyping({ tagName: "TEXTAREA" }), true);
  assert.equal(isTyping({ tagName: "DIV", isContentEditable: true }), true);
  assert.equal(isTyping({ tagName: "CANVAS" }), false);
  assert.equal(isTyping(null), false);
});

// The timeline strip's geometry: where frames, keyframes, absent marks, the job and the playhead are drawn, and
// which frame a click lands on.
import assert from "node:assert/strict";
import test from "node:test";

import { createState } from "../../web/static/viewer/state.js";
import { HEAD, ROW, frameAtX, timelineHeight, timelineRects } from "../../web/static/viewer/timeline.js";

function viewer(frameCount, frame, extra = {}) {
  const S = createState();
  S.dataset = { id: 1, frame_count: frameCount, width: 64, height: 48 };
  S.tracks = [{ id: 4, colour: "#ff0000" }, { id: 8, colour: "#00ff00" }];
  S.frame = frame;
  return Object.assign(S, extra);
}
const DATA = { tracks: [{ track_id: 4, keyframes: [0], tracked: [1, 2, 3], absent: [] },
  { track_id: 8, keyframes: [50], tracked: [], absent: [60, 61] }] };

test("a click lands on the frame under it, wherever the strip is", () => {
  const rect = { left: 40, width: 800 };
  assert.equal(frameAtX(40, rect, 100), 0);
  assert.equal(frameAtX(40 + 8 * 37 + 4, rect, 100), 37);
  assert.equal(frameAtX(839.9, rect, 100), 99);
  assert.equal(frameAtX(440, { left: 40, width: 400 }, 1000), 1000);  // past the end: seek() clamps it
});

test("frames are placed in proportion and never drawn under 1 pixel (2 for keyframes, absent and playhead)", () => {
  const S = viewer(100, 50, { active: 8 });
  const rects = timelineRects(S, DATA, 800);
  assert.deepEqual(rects[0], { fill: "#222", alpha: 1, x: 0, y: 0, w: 800, h: timelineHeight(2) });
  const rowTwo = HEAD + ROW;
  assert.deepEqual(rects.find((r) => r.fill === "#333"), { fill: "#333", alpha: 1, x: 0, y: rowTwo, w: 800, h: ROW });
  const tracked = rects.filter((r) => r.alpha === 0.55);
  assert.deepEqual(tracked.map((r) => [r.x, r.w, r.fill]), [[8, 8, "#ff0000"], [16, 8, "#ff0000"], [24, 8, "#ff0000"]]);
  const absent = rects.filter((r) => r.fill === "#ff3b3b");
  assert.deepEqual(absent.map((r) => [r.x, r.y]), [[480, rowTwo + ROW - 4], [488, rowTwo + ROW - 4]]);
  assert.deepEqual(rects.at(-1), { fill: "#fff", alpha: 1, x: 400, y: 0, w: 8, h: timelineHeight(2) });

  const long = timelineRects(viewer(8000, 4000), DATA, 800);
  assert.equal(long.filter((r) => r.alpha === 0.55)[0].w, 1);
  assert.equal(long.find((r) => r.fill === "#00ff00").w, 2);  // the keyframe at 50
  assert.deepEqual([long.at(-1).x, long.at(-1).w], [400, 2]);
});

test("the head row shows the job's span and, lighter, what it has tracked from its start", () => {
  const job = { frames: [20, 79], start: 60, current: 40 };  // tracking backwards from 60
  const rects = timelineRects(viewer(100, 0, { job }), null, 1000);
  assert.deepEqual(rects.find((r) => r.fill === "#555"), { fill: "#555", alpha: 1, x: 200, y: 2, w: 600, h: HEAD - 6 });
  assert.deepEqual(rects.find((r) => r.fill === "#4caf50"), { fill: "#4caf50", alpha: 1, x: 400, y: 2, w: 210,
    h: HEAD - 6 });
  assert.equal(timelineRects(viewer(100, 0, { job: { frames: [20, 79], start: 20, current: null } }), null, 1000)
    .filter((r) => r.fill === "#4caf50").length, 0);
});

test("unknown tracks are grey; no video, nothing drawn; one empty row while loading", () => {
  const rects = timelineRects(viewer(100, 0), { tracks: [{ track_id: 99, keyframes: [5], tracked: [], absent: [] }] },
    100);
  assert.ok(rects.some((r) => r.fill === "#888"));
  assert.deepEqual(timelineRects(createState(), DATA, 100), []);
  assert.equal(timelineHeight(0), HEAD + ROW + 4);
});

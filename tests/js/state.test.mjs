// The viewer's state transitions: values from Python, unsaved seeds, track selection.
import assert from "node:assert/strict";
import test from "node:test";

import {
  addClick, clampFrame, clearPending, createState, editableBox, placeBox, selectNextTrack, setPendingMask,
  setSelected, snapshot, takeValue, toggleHidden, unsavedCount, valueToWrite,
} from "../../web/static/viewer/state.js";

const DATASET = { id: 3, frame_count: 100, width: 640, height: 360, fps: 25 };
const TRACKS = [{ id: 7, label: "a", colour: "#ff0000" }, { id: 9, label: "b", colour: "#00ff00" },
  { id: 12, label: "c", colour: "#0000ff" }];
const value = (extra) => Object.assign({ dataset: DATASET, revision: "1-a", tracks: TRACKS, active: 9, selected: [],
  hidden: [], frame_idx: 0, pending: {}, seek: null, reset_pending: true, job: null, poll: false }, extra);
const bitmap = () => ({ closed: false, close() { this.closed = true; } });

function opened(extra) {
  const S = createState();
  takeValue(S, value(extra));
  return S;
}

test("a value opens its video at its seek frame, keeping only known track ids", () => {
  const S = createState();
  const taken = takeValue(S, value({ seek: 250, selected: [9, 44], hidden: [12, 5], active: 9 }));
  assert.deepEqual(taken, { poll: false, dropped: [] });
  assert.equal(S.frame, 99);  // clamped to the last frame
  assert.equal(S.active, 9);
  assert.deepEqual(S.selected, [9]);
  assert.deepEqual(S.hidden, [12]);
  assert.equal(takeValue(S, "not a value"), null);
});

test("an unknown active track falls back to the first track, or none", () => {
  assert.equal(opened({ active: 404 }).active, 7);
  assert.equal(opened({ active: 404, tracks: [] }).active, null);
});

test("another video drops the frames held for the old one and takes its pending seeds", () => {
  const S = opened({ seek: 5 });
  const old = bitmap();
  S.images.set(5, old); S.loading.set(6, true); S.queue = [6]; S.masks.set(5, []); S.pendingMasks.set("9:5", "x");
  const taken = takeValue(S, value({ dataset: { ...DATASET, id: 4 }, frame_idx: 2, pending: { "2": {} } }));
  assert.deepEqual(taken.dropped, [old]);
  assert.equal(S.images.size + S.loading.size + S.queue.length + S.masks.size + S.pendingMasks.size, 0);
  assert.equal(S.frame, 2);
  assert.deepEqual(S.pending, { "2": {} });
});

test("a new data version drops the saved masks but keeps frames; pending seeds stay unless reset", () => {
  const S = opened({ seek: 5 });
  S.images.set(5, bitmap()); S.masks.set(5, []); S.chunks.set(0, "done"); S.timeline = { tracks: [] };
  addClick(S, 5, 10, 20, true);
  takeValue(S, value({ revision: "2-b", reset_pending: false, pending: {} }));
  assert.equal(S.images.size, 1);
  assert.equal(S.masks.size + S.chunks.size, 0);
  assert.equal(S.timeline, null);
  assert.equal(unsavedCount(S.pending), 1);
  takeValue(S, value({ revision: "2-b", reset_pending: true, pending: {} }));
  assert.equal(unsavedCount(S.pending), 0);
});

test("a job's progress poll takes data, tracks and job but keeps the person's frame, track and seeds", () => {
  const S = opened({ seek: 40, active: 12 });
  addClick(S, 40, 1, 2, false);
  const job = { frames: [0, 99], start: 0, current: 30 };
  const taken = takeValue(S, value({ poll: true, revision: "3-c", seek: 0, active: 7, pending: {}, job,
    tracks: TRACKS.slice(0, 2) }));
  assert.deepEqual(taken, { poll: true, dropped: [] });
  assert.equal(S.frame, 40);
  assert.equal(S.active, 12);
  assert.equal(S.revision, "3-c");
  assert.equal(S.tracks.length, 2);
  assert.deepEqual(S.job, job);
  assert.equal(unsavedCount(S.pending), 1);
});

test("the value written back carries this side's fields and spends Python's commands", () => {
  const S = opened({ seek: 8, selected: [7] });
  const written = valueToWrite(S, { dataset: DATASET, seek: 8, reset_pending: true, poll: true, base_revision: 4 });
  assert.equal(written.frame_idx, 8);
  assert.equal(written.base_revision, 4);  // fields Python owns pass through
  assert.deepEqual([written.seek, written.reset_pending, written.poll], [null, false, false]);
  written.selected.push(9);
  assert.deepEqual(S.selected, [7]);  // a copy
});

test("clampFrame rounds and clamps; no video means frame 0", () => {
  const S = opened();
  assert.deepEqual([-3, 12.6, "7", 1000, "x"].map((f) => clampFrame(S, f)), [0, 13, 7, 99, 0]);
  assert.equal(clampFrame(createState(), 50), 0);
});

test("clicks and boxes go to the active track's seed on that frame; clearPending drops seed and mask", () => {
  const S = opened({ active: 7 });
  assert.deepEqual(addClick(S, 4, 10.04, 20.06, true), [10, 20.1, true]);
  addClick(S, 4, 30, 40, false);
  placeBox(S, 4, [1, 2, 50, 60], false);
  assert.deepEqual(S.pending, { "4": { "7": { box: [1, 2, 50, 60], clicks: [[10, 20.1, true], [30, 40, false]] } } });
  assert.equal(unsavedCount(S.pending), 1);
  setPendingMask(S, 7, 4, "abc");
  S.maskCanvases.set("p:7:4", {});
  clearPending(S, 7, 4);
  assert.deepEqual(S.pending, {});
  assert.equal(S.pendingMasks.size + S.maskCanvases.size, 0);
});

test("editing a saved keyframe's box carries its saved clicks into the unsaved seed", () => {
  const S = opened({ active: 7 });
  S.masks.set(6, [{ track_id: 7, present: true, keyframe: true, box: [10, 10, 40, 40], clicks: [[20, 20, true]] },
    { track_id: 9, present: true, keyframe: false, box: [0, 0, 5, 5], clicks: [] }]);
  assert.deepEqual(editableBox(S, 7, 6), [10, 10, 40, 40]);
  assert.equal(editableBox(S, 9, 6), null);  // not the active track
  addClick(S, 6, 30, 30, false);
  placeBox(S, 6, [12, 10, 42, 40], true);
  assert.deepEqual(S.pending["6"]["7"], { box: [12, 10, 42, 40], clicks: [[20, 20, true], [30, 30, false]] });
  assert.deepEqual(editableBox(S, 7, 6), [12, 10, 42, 40]);  // the unsaved box is the one edited now
  placeBox(S, 7, [1, 1, 9, 9], false);  // a new box on a frame without a keyframe
  assert.deepEqual(S.pending["7"]["7"].clicks, []);
});

test("tracks: next wraps around, select and hide toggle", () => {
  const S = opened({ active: 12 });
  assert.ok(selectNextTrack(S));
  assert.equal(S.active, 7);
  setSelected(S, 9, true); setSelected(S, 9, true); setSelected(S, 12, true);
  assert.deepEqual(S.selected, [9, 12]);
  setSelected(S, 9, false);
  assert.deepEqual(S.selected, [12]);
  toggleHidden(S, 7); toggleHidden(S, 9); toggleHidden(S, 7);
  assert.deepEqual(S.hidden, [9]);
  assert.equal(selectNextTrack(opened({ tracks: [] })), false);
});

test("state() says whether the frame's saved overlays are loaded", () => {
  const S = opened({ seek: 3 });
  assert.equal(snapshot(S).overlays, false);
  S.masks.set(3, []);
  assert.deepEqual(snapshot(S), { frame: 3, active: 9, selected: [], pending: {}, dataset: DATASET, overlays: true });
});

// The seed preview's decisions: what is previewed, one request at a time with the latest edit next, the status
// line, and which masks go once their seeds are saved or dropped.
import assert from "node:assert/strict";
import test from "node:test";

import {
  answerStatus, hasPrompt, offer, previewBody, previewTarget, settle, staleMasks,
} from "../../web/static/preview/prompt.js";

const STATE = { dataset: { id: 6 }, frame: 12, active: 3,
  pending: { "12": { "3": { box: [1, 2, 30, 40], clicks: [[5, 6, true]] }, "4": { box: null, clicks: [] } } } };

test("the preview is of the active track's seed on the frame on screen", () => {
  const t = previewTarget(STATE, 1000);
  assert.deepEqual(t, { dataset: 6, frame: 12, track: 3, seed: STATE.pending["12"]["3"], at: 1000 });
  assert.deepEqual(previewBody(t, "sam2.1-tiny", "gpu"), { frame_idx: 12, track_id: 3, box: [1, 2, 30, 40],
    clicks: [[5, 6, true]], model: "sam2.1-tiny", queue: "gpu" });
  assert.equal(previewTarget({ ...STATE, frame: 13 }, 0).seed, null);
  assert.equal(previewTarget({ ...STATE, active: null }, 0), null);
  assert.equal(previewTarget({ ...STATE, dataset: null }, 0), null);
  const clicksOnly = previewBody({ frame: 1, track: 2, seed: { clicks: [[1, 1, false]] } }, null, null);
  assert.equal(clicksOnly.box, null);
});

test("a seed needs a box or a click", () => {
  assert.equal(hasPrompt(null), false);
  assert.equal(hasPrompt({ box: null, clicks: [] }), false);
  assert.equal(hasPrompt({ box: [0, 0, 5, 5] }), true);
  assert.equal(hasPrompt({ box: null, clicks: [[1, 1, true]] }), true);
});

test("while a request is out, edits wait and only the latest is sent next", () => {
  const P = { inflight: false, next: null };
  assert.equal(offer(P, "edit 1"), "edit 1");
  assert.equal(offer(P, "edit 2"), null);
  assert.equal(offer(P, "edit 3"), null);
  assert.equal(settle(P), "edit 3");  // edit 2 is never sent
  assert.equal(offer(P, "edit 3"), "edit 3");
  assert.equal(settle(P), null);
  assert.deepEqual(P, { inflight: false, next: null });
});

test("the status line says what came back", () => {
  assert.deepEqual(answerStatus(true, { present: true, encoded: false }, 123.6),
    ["Preview: 124 ms (frame features reused). Accept (A) or refine.", false]);
  assert.deepEqual(answerStatus(true, { present: true, encoded: true }, 80), ["Preview: 80 ms. Accept (A) or refine.",
    false]);
  assert.match(answerStatus(true, { present: false }, 5)[0], /sees no object/);
  assert.deepEqual(answerStatus(false, { error: "No worker is listening on gpu" }, 5),
    ["No worker is listening on gpu", true]);
  assert.deepEqual(answerStatus(false, { detail: "Log in first." }, 5), ["Log in first.", true]);
  assert.deepEqual(answerStatus(false, { detail: [{ msg: "x" }] }, 5), ["The preview failed.", true]);
});

test("a shown mask goes once its seed has no prompt left", () => {
  const shown = new Set(["3:12", "4:12", "3:13"]);
  assert.deepEqual(staleMasks(shown, STATE.pending), ["4:12", "3:13"]);
  assert.deepEqual(staleMasks(new Set(), STATE.pending), []);
});

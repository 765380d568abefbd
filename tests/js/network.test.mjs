// The frame queue and prefetch order, the mask chunks' preload order, and the data routes' URLs.
import assert from "node:assert/strict";
import test from "node:test";

import {
  chunkStart, dropFar, evictFar, frameUrl, masksUrl, nextFetch, nextMaskChunk, prefetchOrder, queueFrame,
  timelineUrl,
} from "../../web/static/viewer/network.js";
import { CHUNK, KEEP, MAX_FETCHES, PREFETCH_AHEAD, PREFETCH_BEHIND, createState } from "../../web/static/viewer/state.js";

function viewer(frameCount = 500, frame = 100) {
  const S = createState();
  S.dataset = { id: 2, frame_count: frameCount, width: 64, height: 48 };
  S.frame = frame;
  return S;
}

// Take what the queue hands out now, as pump() does: each taken frame is a fetch in flight.
function drain(S) {
  const taken = [];
  for (let f = nextFetch(S); f !== null; f = nextFetch(S)) { taken.push(f); S.inflight++; S.fetching.set(f, {}); }
  return taken;
}
// A fetch comes back.
function arrive(S, f) { S.inflight--; S.fetching.delete(f); S.loading.delete(f); S.images.set(f, { f }); }

test("the frame on screen first, then ahead, then behind, at most MAX_FETCHES at once", () => {
  const S = viewer();
  queueFrame(S, 100, true);
  assert.deepEqual(drain(S), [100]);
  arrive(S, 100);
  for (const g of prefetchOrder(100, false)) queueFrame(S, g, false);
  const order = [];
  for (let taken = drain(S); taken.length; taken = drain(S)) {
    assert.ok(taken.length <= MAX_FETCHES && S.inflight <= MAX_FETCHES);
    order.push(...taken);
    for (const f of taken) arrive(S, f);
  }
  const ahead = Array.from({ length: PREFETCH_AHEAD }, (_, i) => 101 + i);
  const behind = Array.from({ length: PREFETCH_BEHIND }, (_, i) => 99 - i);
  assert.deepEqual(order, [...ahead, ...behind]);
});

test("while playing the viewer prefetches twice as far ahead", () => {
  assert.equal(prefetchOrder(10, true).filter((f) => f > 10).length, 2 * PREFETCH_AHEAD);
  assert.deepEqual(prefetchOrder(10, false).slice(-PREFETCH_BEHIND), [9, 8, 7, 6]);
});

test("frames outside the video, already here or already queued are not queued again", () => {
  const S = viewer(50, 0);
  assert.equal(queueFrame(S, -1, true), false);
  assert.equal(queueFrame(S, 50, true), false);
  S.images.set(3, {});
  assert.equal(queueFrame(S, 3, true), false);
  assert.equal(queueFrame(S, 4, false), true);
  assert.equal(queueFrame(S, 4, false), false);
  assert.deepEqual(S.queue, [4]);
});

test("a queued neighbour that becomes the frame on screen moves to the front and takes a fourth slot", () => {
  const S = viewer();
  for (const g of [101, 102, 103, 104, 105, 106]) queueFrame(S, g, false);
  assert.deepEqual(drain(S), [101, 102, 103]);
  S.frame = 105;
  assert.equal(queueFrame(S, 105, true), true);
  assert.deepEqual(S.queue, [105, 104, 106]);
  // Three prefetches are out, yet the frame on screen goes now; the next neighbour waits for a slot.
  assert.deepEqual(drain(S), [105]);
  assert.equal(S.inflight, MAX_FETCHES + 1);
  assert.equal(queueFrame(S, 103, true), false);  // already in flight: nothing to move
});

test("a jump drops far queued frames and hands back the far fetches to abort", () => {
  const S = viewer();
  for (const g of [101, 102, 103, 104, 99]) queueFrame(S, g, false);
  drain(S);  // 101, 102, 103 in flight
  const far = 100 + KEEP + 50;
  S.frame = far;
  const abort = dropFar(S, far);
  assert.equal(abort.length, 3);
  assert.deepEqual(S.queue, []);
  assert.ok(!S.loading.has(104) && !S.loading.has(99));
  // A frame that went far while queued is skipped when its turn comes.
  const T = viewer();
  queueFrame(T, 101, false); queueFrame(T, 140, false);
  T.frame = 101 + KEEP + 10;
  assert.deepEqual(drain(T), [140]);
  assert.ok(!T.loading.has(101));
});

test("decoded frames further than KEEP from the current one are evicted", () => {
  const S = viewer();
  for (const g of [100 - KEEP - 1, 100 - KEEP, 100, 100 + KEEP, 100 + KEEP + 1]) S.images.set(g, { g });
  const gone = evictFar(S, 100);
  assert.deepEqual(gone.map((b) => b.g).sort((a, b) => a - b), [100 - KEEP - 1, 100 + KEEP + 1]);
  assert.deepEqual([...S.images.keys()].sort((a, b) => a - b), [100 - KEEP, 100, 100 + KEEP]);
});

test("mask chunks preload nearest first, after before before, one at a time", () => {
  const chunks = new Map([[chunkStart(120), "done"]]);
  assert.equal(chunkStart(120), 100);
  const order = [];
  for (let start = nextMaskChunk(chunks, 120, 330); start !== null; start = nextMaskChunk(chunks, 120, 330)) {
    order.push(start);
    chunks.set(start, "loading");
    assert.equal(nextMaskChunk(chunks, 120, 330), null);  // one at a time
    chunks.set(start, "done");
  }
  assert.deepEqual(order, [150, 50, 200, 0, 250, 300]);
  assert.equal(CHUNK, 50);
});

test("URLs of the data routes", () => {
  assert.equal(frameUrl(4, 17), "/viewer/frame/4/17.jpg");
  assert.equal(masksUrl(4, 150), "/viewer/masks/4?start=150&stop=" + (150 + CHUNK));
  assert.equal(timelineUrl(4), "/viewer/timeline/4");
});

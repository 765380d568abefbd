// Data from the server (web/routes.py): frames as JPEG, fetched around the frame on screen; saved features as COCO
// RLE in chunks of CHUNK frames; the timeline. The queue and prefetch decisions are pure functions on the state
// (exported for tests); the fetch calls below them only carry those decisions out.
import { CHUNK, KEEP, MAX_FETCHES, MAX_MASK_CHUNKS, PREFETCH_AHEAD, PREFETCH_BEHIND } from "./state.js";

export function frameUrl(datasetId, f) { return "/viewer/frame/" + datasetId + "/" + f + ".jpg"; }
export function masksUrl(datasetId, start) {
  return "/viewer/masks/" + datasetId + "?start=" + start + "&stop=" + (start + CHUNK);
}
export function timelineUrl(datasetId) { return "/viewer/timeline/" + datasetId; }

// ---- the frame queue -------------------------------------------------------------------------------------------
// Ask for a frame: urgent (the one on screen) to the front, prefetches to the back. Returns whether the queue
// changed (the caller pumps).
export function queueFrame(S, f, urgent) {
  if (!S.dataset || f < 0 || f >= S.dataset.frame_count || S.images.has(f)) return false;
  if (S.loading.has(f)) {
    // Queued earlier as a neighbour and now the frame on screen: it goes to the front, not behind the others.
    const at = urgent && !S.fetching.has(f) ? S.queue.indexOf(f) : -1;
    if (at <= 0) return false;
    S.queue.splice(at, 1); S.queue.unshift(f);
    return true;
  }
  if (urgent) S.queue.unshift(f); else S.queue.push(f);
  S.loading.set(f, true);
  return true;
}

// The next frame to fetch now, or null when the queue is empty or enough fetches are out. The frame on screen may
// take one slot beyond the limit: it never waits for prefetches to come back. Frames gone far from the one on
// screen leave the queue unfetched.
export function nextFetch(S) {
  while (S.queue.length && (S.inflight < MAX_FETCHES || (S.queue[0] === S.frame && S.inflight <= MAX_FETCHES))) {
    const f = S.queue.shift();
    if (!S.dataset || Math.abs(f - S.frame) > KEEP) { S.loading.delete(f); continue; }
    return f;
  }
  return null;
}

// The neighbours to prefetch once frame f is here, in the order asked: ahead first (twice as far while playing),
// then behind. Frames outside the video are left to queueFrame to refuse.
export function prefetchOrder(f, playing) {
  const order = [];
  const ahead = playing ? PREFETCH_AHEAD * 2 : PREFETCH_AHEAD;
  for (let i = 1; i <= ahead; i++) order.push(f + i);
  for (let i = 1; i <= PREFETCH_BEHIND; i++) order.push(f - i);
  return order;
}

// A jump to f drops what was queued far from it. Returns the fetches in flight far from f (the caller aborts them).
export function dropFar(S, f) {
  S.queue = S.queue.filter((g) => { const keep = Math.abs(g - f) <= KEEP; if (!keep) S.loading.delete(g); return keep; });
  return Array.from(S.fetching).filter(([g]) => Math.abs(g - f) > KEEP).map(([, controller]) => controller);
}

// Forget the decoded frames far from f. Returns their bitmaps (the caller closes them).
export function evictFar(S, f) {
  const gone = [];
  for (const [g, bitmap] of S.images) if (Math.abs(g - f) > KEEP) { gone.push(bitmap); S.images.delete(g); }
  return gone;
}

export function chunkStart(f) { return Math.floor(f / CHUNK) * CHUNK; }

// The mask chunk to preload next: the nearest one not asked for yet, after first, or null when every chunk is
// here, one is on its way (one at a time), or MAX_MASK_CHUNKS are held.
export function nextMaskChunk(chunks, frame, frameCount) {
  if (chunks.size >= MAX_MASK_CHUNKS) return null;
  for (const state of chunks.values()) if (state === "loading") return null;
  const here = chunkStart(frame);
  for (let d = CHUNK; d < frameCount + CHUNK; d += CHUNK) {
    for (const start of [here + d, here - d]) {
      if (start >= 0 && start < frameCount && !chunks.has(start)) return start;
    }
  }
  return null;
}

// ---- fetching: V is the viewer (main.js): state S, info line, schedulePaint, timelineLoaded ----------------------
function report(V, e) { V.info.textContent = String(e.message || e); }

export function requestFrame(V, f, urgent) {
  if (queueFrame(V.S, f, urgent)) pump(V);
}

function pump(V) {
  const S = V.S;
  for (let f = nextFetch(S); f !== null; f = nextFetch(S)) {
    const frame = f, datasetId = S.dataset.id, controller = new AbortController();
    S.inflight++;
    S.fetching.set(frame, controller);
    fetch(frameUrl(datasetId, frame), { credentials: "same-origin", signal: controller.signal })
      .then((r) => { if (!r.ok) throw new Error("frame " + frame + ": HTTP " + r.status); return r.blob(); })
      .then((blob) => createImageBitmap(blob))
      .then((bitmap) => {
        if (!S.dataset || S.dataset.id !== datasetId) { bitmap.close(); return; }
        S.images.set(frame, bitmap);
        if (frame === S.frame) { V.schedulePaint(); prefetchAround(V, frame); }
      })
      .catch((e) => { if (e.name !== "AbortError") report(V, e); })
      .finally(() => { S.loading.delete(frame); S.fetching.delete(frame); S.inflight--; pump(V); });
  }
}

export function prefetchAround(V, f) {
  const S = V.S;
  // A jump elsewhere drops the prefetches around the old frame, queued or in flight: the server decodes one frame
  // of a video at a time, and the frame asked for must not wait behind neighbours nobody will look at.
  for (const controller of dropFar(S, f)) controller.abort();
  requestFrame(V, f, true);
  ensureMasks(V, f);
  // Neighbours only once the frame itself is here: a prefetch sent with a far jump would make the frame the person
  // asked for wait behind it.
  if (!S.images.has(f)) return;
  for (const g of prefetchOrder(f, S.playing)) requestFrame(V, g, false);
  for (const bitmap of evictFar(S, f)) bitmap.close();
  ensureMasks(V, f);
  if (f + CHUNK / 2 < S.dataset.frame_count) ensureMasks(V, f + CHUNK / 2);
}

export function ensureMasks(V, f) {
  const S = V.S;
  if (!S.dataset) return;
  const start = chunkStart(f);
  if (S.chunks.has(start)) return;
  const revision = S.revision, datasetId = S.dataset.id;
  S.chunks.set(start, "loading");
  fetch(masksUrl(datasetId, start), { credentials: "same-origin" })
    .then((r) => { if (!r.ok) throw new Error("masks: HTTP " + r.status); return r.json(); })
    .then((data) => {
      if (!S.dataset || S.dataset.id !== datasetId || S.revision !== revision) return;
      for (let g = start; g < start + CHUNK; g++) S.masks.set(g, data.frames[g] || []);
      S.chunks.set(start, "done");
      if (S.frame >= start && S.frame < start + CHUNK) V.schedulePaint();
      preloadMasks(V);
    })
    .catch((e) => { S.chunks.delete(start); report(V, e); });
}

// Masks are small next to frames (RLE): once the frames around the person are asked for, the masks of the rest of
// the video come one chunk at a time, nearest first, so a jump anywhere finds its overlays already here.
function preloadMasks(V) {
  const S = V.S;
  // Not while a job runs: each of its commits is a new revision, which drops the masks held here.
  if (!S.dataset || S.job) return;
  const start = nextMaskChunk(S.chunks, S.frame, S.dataset.frame_count);
  if (start !== null) ensureMasks(V, start);
}

// The timeline of the current data version, once; V.timelineLoaded() draws it when it comes.
export function loadTimeline(V) {
  const S = V.S;
  if (!S.dataset || S.timeline === "loading") return;
  if (S.timeline && S.timeline.revision === S.revision && S.timeline.dataset_id === S.dataset.id) return;
  const datasetId = S.dataset.id, revision = S.revision;
  S.timeline = "loading";
  fetch(timelineUrl(datasetId), { credentials: "same-origin" })
    .then((r) => { if (!r.ok) throw new Error("timeline: HTTP " + r.status); return r.json(); })
    .then((data) => {
      if (!S.dataset || S.dataset.id !== datasetId) return;
      data.revision = revision;
      S.timeline = data;
      V.timelineLoaded();
    })
    .catch((e) => { S.timeline = null; report(V, e); });
}

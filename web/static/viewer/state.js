// The viewer's state and its pure transitions: what the value from Python changes, the unsaved seeds, the active,
// selected and hidden tracks. Nothing here touches the DOM or the network, so node's test runner covers it.

// KEEP bounds the decoded frames held (a 1080p bitmap is 8 MB): frames further than KEEP from the current one go.
// One export per declaration: web/js_modules.py reads `export const NAME` (and the tests import them).
export const PREFETCH_AHEAD = 12;  // frames asked for ahead of the one on screen (twice that while playing)
export const PREFETCH_BEHIND = 4;
export const KEEP = 24;
export const CHUNK = 50;  // frames of saved features per /viewer/masks request
export const MAX_FETCHES = 3;  // frame requests out at once
export const MAX_MASK_CHUNKS = 200;

export function createState() {
  return {
    dataset: null, revision: -1, tracks: [], frame: 0, active: null, selected: [], hidden: [], pending: {},
    playing: false, job: null, images: new Map(), loading: new Map(), fetching: new Map(), queue: [], inflight: 0,
    chunks: new Map(), masks: new Map(), maskCanvases: new Map(), pendingMasks: new Map(), timeline: null,
    drag: null, listeners: {}, keyAt: null, paintQueued: false,
  };
}

export function clampFrame(S, f) {
  if (!S.dataset) return 0;
  return Math.max(0, Math.min(S.dataset.frame_count - 1, Math.round(Number(f) || 0)));
}

export function trackById(S, id) { return S.tracks.find((t) => t.id === id); }

// The saved data of one version of the video (masks, their drawn canvases, the timeline) is dropped as a whole.
function dropData(S) {
  S.chunks.clear(); S.masks.clear(); S.maskCanvases.clear(); S.timeline = null;
}

// Take a value written by Python. Returns null when there is nothing to take, else {poll, dropped}: poll is a job
// progress update (the caller reloads data but keeps the person's view), dropped the frame bitmaps of a video no
// longer shown (the caller closes them).
export function takeValue(S, v) {
  if (!v || typeof v !== "object") return null;
  if (v.poll && S.dataset && v.dataset && v.dataset.id === S.dataset.id) {
    // A progress update while a job runs: new data and the job's span, but the person's frame, active and
    // selected tracks and unsaved seeds stay as they are now (the value was read a moment ago).
    if (v.revision !== S.revision) { S.revision = v.revision; dropData(S); }
    S.tracks = v.tracks || S.tracks;
    S.job = v.job || null;
    return { poll: true, dropped: [] };
  }
  let dropped = [];
  const newDataset = v.dataset ? v.dataset.id : null;
  if (!S.dataset || !v.dataset || S.dataset.id !== newDataset) {
    dropped = Array.from(S.images.values());
    S.images.clear(); S.loading.clear(); S.queue = [];
    dropData(S); S.pendingMasks.clear();
    S.frame = v.frame_idx || 0; S.pending = v.pending || {}; S.revision = -1;
    S.playing = false;
  }
  S.dataset = v.dataset || null;
  if (v.revision !== S.revision) { S.revision = v.revision; dropData(S); }
  S.tracks = v.tracks || [];
  const ids = new Set(S.tracks.map((t) => t.id));
  S.active = ids.has(v.active) ? v.active : (S.tracks.length ? S.tracks[0].id : null);
  S.selected = (v.selected || []).filter((id) => ids.has(id));
  S.hidden = (v.hidden || []).filter((id) => ids.has(id));
  if (v.reset_pending) S.pending = v.pending || {};
  S.job = v.job || null;
  if (S.dataset && v.seek !== null && v.seek !== undefined) S.frame = clampFrame(S, v.seek);
  return { poll: false, dropped };
}

// The value written back to Python: the fields this side owns, over the rest of the current value. Commands
// (seek, reset_pending, poll) are spent once read.
export function valueToWrite(S, current) {
  return Object.assign({}, current || {}, {
    frame_idx: S.frame, active: S.active, selected: S.selected.slice(), hidden: S.hidden.slice(),
    pending: S.pending, seek: null, reset_pending: false, poll: false,
  });
}

// What window.sam2Viewer.state() answers (tests, the seed preview).
export function snapshot(S) {
  return { frame: S.frame, active: S.active, selected: S.selected.slice(), pending: S.pending, dataset: S.dataset,
    overlays: S.masks.has(S.frame) };  // overlays: the saved annotations of this frame are loaded (and drawn)
}

// ---- unsaved seeds: pending["<frame>"]["<track>"] = {box, clicks} ----------------------------------------------
export function seedOf(S, frame, trackId, create) {
  const fk = String(frame), tk = String(trackId);
  if (!S.pending[fk]) { if (!create) return null; S.pending[fk] = {}; }
  if (!S.pending[fk][tk]) { if (!create) return null; S.pending[fk][tk] = { box: null, clicks: [] }; }
  return S.pending[fk][tk];
}

// Drop a track's unsaved seed on a frame, and the mask the seed preview drew for it.
export function clearPending(S, trackId, frame) {
  const fk = String(frame), tk = String(trackId), key = trackId + ":" + frame;
  if (S.pending[fk]) { delete S.pending[fk][tk]; if (!Object.keys(S.pending[fk]).length) delete S.pending[fk]; }
  S.pendingMasks.delete(key);
  S.maskCanvases.delete("p:" + key);
}

// An unsaved mask (COCO RLE counts at video size) for a track on a frame; null counts remove it.
export function setPendingMask(S, trackId, frame, counts) {
  const key = trackId + ":" + frame;
  if (counts) S.pendingMasks.set(key, counts); else S.pendingMasks.delete(key);
  S.maskCanvases.delete("p:" + key);
}

export function unsavedCount(pending) {
  let n = 0;
  for (const tracks of Object.values(pending)) {
    for (const seed of Object.values(tracks)) if (seed.box || (seed.clicks && seed.clicks.length)) n++;
  }
  return n;
}

export function savedKeyframe(S, trackId, frame) {
  const feature = (S.masks.get(frame) || []).find((g) => g.track_id === trackId);
  return feature && feature.keyframe && feature.present && feature.box ? feature : null;
}

// The box the active track's handles adjust on a frame: its unsaved box, else its saved keyframe's box (dragging
// that one makes it an unsaved edit of the keyframe, saved like a box drawn there). null when it has neither.
export function editableBox(S, trackId, frame) {
  if (trackId === null || trackId !== S.active) return null;
  const seed = seedOf(S, frame, trackId, false);
  if (seed && seed.box) return seed.box;
  const saved = savedKeyframe(S, trackId, frame);
  return saved ? saved.box : null;
}

// Set a finished drag's box as the active track's unsaved box on a frame. A box edit replaces the keyframe's box
// and clicks on Save: the saved clicks are carried over, so only the box changes (clicks added since stay too).
export function placeBox(S, frame, box, editsSaved) {
  const seed = seedOf(S, frame, S.active, true);
  const saved = !seed.box && editsSaved ? savedKeyframe(S, S.active, frame) : null;
  if (saved) seed.clicks = (saved.clicks || []).map((c) => c.slice()).concat(seed.clicks);
  seed.box = box;
}

// A + (positive) or - point for the active track, at a tenth of a pixel.
export function addClick(S, frame, x, y, positive) {
  const click = [Math.round(x * 10) / 10, Math.round(y * 10) / 10, positive];
  seedOf(S, frame, S.active, true).clicks.push(click);
  return click;
}

// ---- tracks: active (drawn on), selected (tracked together), hidden --------------------------------------------
export function selectNextTrack(S) {
  if (!S.tracks.length) return false;
  const i = S.tracks.findIndex((t) => t.id === S.active);
  S.active = S.tracks[(i + 1) % S.tracks.length].id;
  return true;
}

export function setSelected(S, trackId, on) {
  S.selected = on ? [...new Set([...S.selected, trackId])] : S.selected.filter((i) => i !== trackId);
}

export function toggleHidden(S, trackId) {
  S.hidden = S.hidden.includes(trackId) ? S.hidden.filter((i) => i !== trackId) : [...S.hidden, trackId];
}

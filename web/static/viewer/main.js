// The frame viewer of the Annotate tab (ui/viewer.py), entry module: mount() wires the other modules to the page.
// It runs as gr.HTML's js_on_load (web/js_modules.py builds that script from these modules): Gradio provides
// `element` (the component's root), `props` (props.value is the viewer's value, shared with Python) and `watch`.
//
// The server only hands out data (web/routes.py): frames as JPEG, features as COCO RLE, the timeline. Everything
// on screen is drawn here: frame, filled/outlined/labelled masks, boxes, clicks, rubber band, timeline.
//   state.js: the state and its pure transitions     rle.js: mask decoding      drawing.js: the frame canvas
//   input.js: keys, mouse, coordinates               network.js: fetching       timeline.js: the timeline strip
//   tracklist.js: the track list
//
// Value shared with Python (ui/viewer.py builds it; this side writes back frame_idx, active, selected, hidden,
// pending):
//   dataset {id, frame_count, width, height, fps} | null, revision, tracks [{id, label, colour, begin, end}],
//   active (track id drawn on), selected [track ids], hidden [track ids], frame_idx,
//   pending {"<frame>": {"<track>": {box: [x1, y1, x2, y2] | null, clicks: [[x, y, positive]]}}},
//   seek (frame to jump to, set by Python), reset_pending (Python replaced `pending`), job {...} | null,
//   poll (a job progress update: take data, tracks and job only).
//
// Event interface for other code (e.g. the instant SAM2 preview), on window.sam2Viewer:
//   on(name, fn) / off(name, fn)   name: "frame" {frame}, "click" {frame, track_id, x, y, positive},
//                                  "box" {frame, track_id, box}, "pending" {pending},
//                                  "painted" {frame, ms (since the last arrow key), masks (overlays were loaded)}
//   setPendingMask(trackId, frame, counts | null)   draw an unsaved mask (COCO RLE counts string at video size)
//   clearPending(trackId, frame)   drop that track's unsaved seed and pending mask on that frame
//   seek(frame), state() -> {frame, active, selected, pending, dataset, overlays}, decodeCounts(counts) -> run lengths
// The same events are also dispatched as DOM CustomEvents "sv:<name>" on the viewer's root element.
import { paint } from "./drawing.js";
import { bindInput } from "./input.js";
import { loadTimeline, prefetchAround, requestFrame } from "./network.js";
import { decodeCounts } from "./rle.js";
import {
  clampFrame, clearPending, createState, selectNextTrack, setPendingMask, snapshot, takeValue, valueToWrite,
} from "./state.js";
import { bindTimeline, paintTimeline, renderAbsent } from "./timeline.js";
import { renderTrackList } from "./tracklist.js";

export function mount({ element, props, watch }) {
  const root = element.querySelector(".sv-root");
  if (!root || root.dataset.ready) return;
  root.dataset.ready = "1";
  const canvas = root.querySelector(".sv-frame"), timeline = root.querySelector(".sv-timeline");
  const S = createState();
  // The viewer as the other modules see it: state, elements, and the actions they call back.
  const V = {
    S, root, canvas, ctx: canvas.getContext("2d"), timeline, tctx: timeline.getContext("2d"),
    info: root.querySelector(".sv-info"), trackList: root.querySelector(".sv-tracks"),
    absentList: root.querySelector(".sv-absent"),
    emit, writeBack, schedulePaint, seek, togglePlay,
    nextTrack() { if (selectNextTrack(S)) { renderTrackList(V); writeBack(); schedulePaint(); } },
    timelineLoaded() { renderAbsent(V); paintTimeline(V); },
  };

  function emit(name, detail) {
    (S.listeners[name] || []).forEach((fn) => { try { fn(detail); } catch (e) { console.error(e); } });
    root.dispatchEvent(new CustomEvent("sv:" + name, { detail }));
  }
  window.sam2Viewer = {
    on(name, fn) { (S.listeners[name] = S.listeners[name] || []).push(fn); },
    off(name, fn) { S.listeners[name] = (S.listeners[name] || []).filter((f) => f !== fn); },
    setPendingMask(trackId, frame, counts) { setPendingMask(S, trackId, frame, counts); schedulePaint(); },
    clearPending(trackId, frame) {  // drop a track's unsaved seed (and its pending mask) on a frame
      clearPending(S, trackId, frame);
      writeBack();
      emit("pending", { pending: S.pending });
      schedulePaint();
    },
    seek(frame) { seek(frame); },
    decodeCounts(counts) { return decodeCounts(counts); },  // COCO compressed RLE string -> run lengths
    state() { return snapshot(S); },
    root,
  };

  function writeBack() { props.value = valueToWrite(S, props.value); }

  function applyValue(v) {
    const taken = takeValue(S, v);
    if (!taken) return;
    if (taken.poll) {
      loadTimeline(V); renderTrackList(V); writeBack(); prefetchAround(V, S.frame); schedulePaint();
      return;
    }
    taken.dropped.forEach((b) => b.close && b.close());
    if (S.dataset) {
      canvas.width = S.dataset.width; canvas.height = S.dataset.height;
      loadTimeline(V);
    }
    renderTrackList(V);
    writeBack();
    seek(S.frame, true);
  }

  function schedulePaint() {
    if (S.paintQueued) return;
    S.paintQueued = true;
    requestAnimationFrame(() => {
      S.paintQueued = false;
      if (!paint(V)) requestFrame(V, S.frame, true); // painted when it arrives
    });
  }

  function seek(f, force) {
    if (!S.dataset) { schedulePaint(); return; }
    const g = clampFrame(S, f);
    const changed = g !== S.frame;
    S.frame = g;
    prefetchAround(V, g);
    if (changed || force) { writeBack(); if (changed) emit("frame", { frame: g }); }
    schedulePaint();
  }

  let lastTick = 0;
  function playLoop(now) {
    if (!S.playing || !S.dataset) return;
    const interval = 1000 / Math.max(1, Math.min(60, S.dataset.fps || 25));
    if (now - lastTick >= interval && S.images.has(S.frame + 1)) {
      lastTick = now;
      if (S.frame + 1 >= S.dataset.frame_count) { S.playing = false; schedulePaint(); return; }
      seek(S.frame + 1);
    } else if (!S.images.has(S.frame + 1)) {
      prefetchAround(V, S.frame);
    }
    requestAnimationFrame(playLoop);
  }
  function togglePlay() {
    if (!S.dataset) return;
    S.playing = !S.playing;
    if (S.playing) { if (S.frame >= S.dataset.frame_count - 1) seek(0); requestAnimationFrame(playLoop); }
    schedulePaint();
  }

  bindInput(V);
  bindTimeline(V);
  root.querySelector(".sv-play").addEventListener("click", togglePlay);
  root.querySelector(".sv-prev").addEventListener("click", () => seek(S.frame - 1));
  root.querySelector(".sv-next").addEventListener("click", () => seek(S.frame + 1));
  root.querySelector(".sv-back10").addEventListener("click", () => seek(S.frame - 10));
  root.querySelector(".sv-fwd10").addEventListener("click", () => seek(S.frame + 10));
  new ResizeObserver(() => { paintTimeline(V); schedulePaint(); }).observe(root);

  watch("value", () => applyValue(props.value));
  applyValue(props.value);
}

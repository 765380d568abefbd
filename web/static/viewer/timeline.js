// The timeline strip under the frame: a head row with the running job's span and progress, then one row per track
// (keyframes, tracked frames, frames scored absent), the active track's row lit, and the playhead; click to seek.
// The geometry is pure (timelineRects, frameAtX, exported for tests); paintTimeline draws what it returns.
import { trackById } from "./state.js";

export const ROW = 14;  // a track's row, pixels
export const HEAD = 12;  // the job's row

export function timelineHeight(rows) { return HEAD + Math.max(1, rows) * ROW + 4; }

// The frame under a click at clientX on a timeline shown at `rect` (the caller clamps it to the video).
export function frameAtX(clientX, rect, frameCount) {
  return Math.floor(((clientX - rect.left) / rect.width) * frameCount);
}

// What the strip shows, as rectangles in the order drawn: {fill, alpha, x, y, w, h}. data: the timeline route's
// answer (or null while it loads); a frame is at least 1 pixel wide, a keyframe, absent mark and playhead 2.
export function timelineRects(S, data, width) {
  const rows = data ? data.tracks.length : 0;
  const height = timelineHeight(rows);
  if (!S.dataset) return [];
  const n = S.dataset.frame_count, fx = (f) => (f / n) * width, fw = Math.max(1, width / n);
  const out = [];
  const rect = (fill, x, y, w, h, alpha = 1) => out.push({ fill, alpha, x, y, w, h });
  rect("#222", 0, 0, width, height);
  const job = S.job;
  if (job && job.frames && job.frames.length === 2) {
    const [a, b] = job.frames;
    rect("#555", fx(a), 2, fx(b + 1) - fx(a), HEAD - 6);
    if (job.current !== null && job.current !== undefined) {
      const lo = Math.min(job.start, job.current), hi = Math.max(job.start, job.current);
      rect("#4caf50", fx(lo), 2, fx(hi + 1) - fx(lo), HEAD - 6);
    }
  }
  if (data) data.tracks.forEach((t, i) => {
    const track = trackById(S, t.track_id), y = HEAD + i * ROW, colour = track ? track.colour : "#888";
    if (t.track_id === S.active) rect("#333", 0, y, width, ROW);
    for (const f of t.tracked) rect(colour, fx(f), y + 4, fw, ROW - 8, 0.55);
    for (const f of t.keyframes) rect(colour, fx(f), y + 1, Math.max(2, fw), ROW - 2);
    for (const f of t.absent) rect("#ff3b3b", fx(f), y + ROW - 4, Math.max(2, fw), 3);
  });
  rect("#fff", fx(S.frame), 0, Math.max(2, fw), height);
  return out;
}

// V: the viewer (main.js) with its state S, the timeline canvas and its 2D context.
export function paintTimeline(V) {
  const { S, timeline, tctx } = V;
  const data = S.timeline && S.timeline !== "loading" ? S.timeline : null;
  const width = timeline.clientWidth || 800;
  if (timeline.width !== width) timeline.width = width;
  const height = timelineHeight(data ? data.tracks.length : 0);
  if (timeline.height !== height) timeline.height = height;
  tctx.clearRect(0, 0, width, height);
  for (const r of timelineRects(S, data, width)) {
    tctx.fillStyle = r.fill; tctx.globalAlpha = r.alpha;
    tctx.fillRect(r.x, r.y, r.w, r.h);
  }
  tctx.globalAlpha = 1;
}

// Under the strip, per track, the frames scored absent as buttons that jump there (the first 30).
export function renderAbsent(V) {
  const { S, absentList } = V;
  absentList.textContent = "";
  const data = S.timeline;
  if (!data || data === "loading") return;
  for (const t of data.tracks) {
    if (!t.absent.length) continue;
    const line = document.createElement("div");
    line.append("Track #" + t.track_id + " scored absent on " + t.absent.length + " frame(s): ");
    for (const f of t.absent.slice(0, 30)) {
      const a = document.createElement("button");
      a.type = "button"; a.className = "sv-jump"; a.textContent = String(f);
      a.addEventListener("click", () => V.seek(f));
      line.append(a);
    }
    if (t.absent.length > 30) line.append(" ...");
    absentList.append(line);
  }
}

export function bindTimeline(V) {
  V.timeline.addEventListener("mousedown", (e) => {
    if (!V.S.dataset) return;
    V.seek(frameAtX(e.clientX, V.timeline.getBoundingClientRect(), V.S.dataset.frame_count));
  });
}

// The frame viewer of the Annotate tab. Runs as gr.HTML's js_on_load: Gradio provides `element` (the component's
// root), `props` (props.value is the viewer's value, shared with Python) and `watch`.
//
// The server only hands out data (web/routes.py): frames as JPEG, features as COCO RLE, the timeline. Everything
// on screen is drawn here: frame, filled/outlined/labelled masks, boxes, clicks, rubber band, timeline.
//
// Value shared with Python (ui/viewer.py builds it; this file writes back frame_idx, active, selected, hidden,
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
(function () {
  const root = element.querySelector(".sv-root");
  if (!root || root.dataset.ready) return;
  root.dataset.ready = "1";
  const canvas = root.querySelector(".sv-frame");
  const ctx = canvas.getContext("2d");
  const timeline = root.querySelector(".sv-timeline");
  const tctx = timeline.getContext("2d");
  const info = root.querySelector(".sv-info");
  const trackList = root.querySelector(".sv-tracks");
  const absentList = root.querySelector(".sv-absent");

  // KEEP bounds the decoded frames held (a 1080p bitmap is 8 MB): frames further than KEEP from the current one go.
  const PREFETCH_AHEAD = 12, PREFETCH_BEHIND = 4, KEEP = 24, CHUNK = 50, MAX_FETCHES = 3, MAX_MASK_CHUNKS = 200;
  const S = {
    dataset: null, revision: -1, tracks: [], frame: 0, active: null, selected: [], hidden: [], pending: {},
    playing: false, job: null, images: new Map(), loading: new Map(), fetching: new Map(), queue: [], inflight: 0,
    chunks: new Map(), masks: new Map(), maskCanvases: new Map(), pendingMasks: new Map(), timeline: null,
    drag: null, listeners: {}, keyAt: null, paintQueued: false,
  };

  // ---- events --------------------------------------------------------------------------------------------------
  function emit(name, detail) {
    (S.listeners[name] || []).forEach((fn) => { try { fn(detail); } catch (e) { console.error(e); } });
    root.dispatchEvent(new CustomEvent("sv:" + name, { detail }));
  }
  const api = {
    on(name, fn) { (S.listeners[name] = S.listeners[name] || []).push(fn); },
    off(name, fn) { S.listeners[name] = (S.listeners[name] || []).filter((f) => f !== fn); },
    setPendingMask(trackId, frame, counts) {
      const key = trackId + ":" + frame;
      if (counts) S.pendingMasks.set(key, counts); else S.pendingMasks.delete(key);
      S.maskCanvases.delete("p:" + key);
      schedulePaint();
    },
    clearPending(trackId, frame) {  // drop a track's unsaved seed (and its pending mask) on a frame
      const fk = String(frame), tk = String(trackId), key = trackId + ":" + frame;
      if (S.pending[fk]) { delete S.pending[fk][tk]; if (!Object.keys(S.pending[fk]).length) delete S.pending[fk]; }
      S.pendingMasks.delete(key);
      S.maskCanvases.delete("p:" + key);
      writeBack();
      emit("pending", { pending: S.pending });
      schedulePaint();
    },
    seek(frame) { seek(frame); },
    decodeCounts(counts) { return decodeCounts(counts); },  // COCO compressed RLE string -> run lengths
    state() {
      return { frame: S.frame, active: S.active, selected: S.selected.slice(), pending: S.pending, dataset: S.dataset,
        overlays: S.masks.has(S.frame) };  // overlays: the saved annotations of this frame are loaded (and drawn)
    },
    root,
  };
  window.sam2Viewer = api;

  // ---- value shared with Python --------------------------------------------------------------------------------
  function writeBack() {
    props.value = Object.assign({}, props.value || {}, {
      frame_idx: S.frame, active: S.active, selected: S.selected.slice(), hidden: S.hidden.slice(),
      pending: S.pending, seek: null, reset_pending: false, poll: false,
    });
  }

  function applyValue(v) {
    if (!v || typeof v !== "object") return;
    if (v.poll && S.dataset && v.dataset && v.dataset.id === S.dataset.id) {
      // A progress update while a job runs: new data and the job's span, but the person's frame, active and
      // selected tracks and unsaved seeds stay as they are now (the value was read a moment ago).
      if (v.revision !== S.revision) {
        S.revision = v.revision;
        S.chunks.clear(); S.masks.clear(); S.maskCanvases.clear(); S.timeline = null;
      }
      S.tracks = v.tracks || S.tracks;
      S.job = v.job || null;
      loadTimeline(); renderTrackList(); writeBack(); prefetchAround(S.frame); schedulePaint();
      return;
    }
    const newDataset = v.dataset ? v.dataset.id : null;
    if (!S.dataset || !v.dataset || S.dataset.id !== newDataset) {
      S.images.forEach((b) => b.close && b.close());
      S.images.clear(); S.loading.clear(); S.queue = [];
      S.chunks.clear(); S.masks.clear(); S.maskCanvases.clear(); S.pendingMasks.clear(); S.timeline = null;
      S.frame = v.frame_idx || 0; S.pending = v.pending || {}; S.revision = -1;
      S.playing = false;
    }
    S.dataset = v.dataset || null;
    if (v.revision !== S.revision) {
      S.revision = v.revision;
      S.chunks.clear(); S.masks.clear(); S.maskCanvases.clear(); S.timeline = null;
    }
    S.tracks = v.tracks || [];
    const ids = new Set(S.tracks.map((t) => t.id));
    S.active = ids.has(v.active) ? v.active : (S.tracks.length ? S.tracks[0].id : null);
    S.selected = (v.selected || []).filter((id) => ids.has(id));
    S.hidden = (v.hidden || []).filter((id) => ids.has(id));
    if (v.reset_pending) S.pending = v.pending || {};
    S.job = v.job || null;
    if (S.dataset) {
      if (v.seek !== null && v.seek !== undefined) S.frame = clampFrame(v.seek);
      canvas.width = S.dataset.width; canvas.height = S.dataset.height;
      loadTimeline();
    }
    renderTrackList();
    writeBack();
    seek(S.frame, true);
  }

  // ---- frames --------------------------------------------------------------------------------------------------
  function clampFrame(f) {
    if (!S.dataset) return 0;
    return Math.max(0, Math.min(S.dataset.frame_count - 1, Math.round(Number(f) || 0)));
  }
  function frameUrl(f) { return "/viewer/frame/" + S.dataset.id + "/" + f + ".jpg"; }

  function requestFrame(f, urgent) {
    if (!S.dataset || f < 0 || f >= S.dataset.frame_count || S.images.has(f)) return;
    if (S.loading.has(f)) {
      // Queued earlier as a neighbour and now the frame on screen: it goes to the front, not behind the others.
      const at = urgent && !S.fetching.has(f) ? S.queue.indexOf(f) : -1;
      if (at > 0) { S.queue.splice(at, 1); S.queue.unshift(f); pump(); }
      return;
    }
    if (urgent) S.queue.unshift(f); else S.queue.push(f);
    S.loading.set(f, true);
    pump();
  }
  function pump() {
    // The frame on screen may take one slot beyond the limit: it never waits for prefetches to come back.
    while (S.queue.length && (S.inflight < MAX_FETCHES || (S.queue[0] === S.frame && S.inflight <= MAX_FETCHES))) {
      const f = S.queue.shift();
      if (!S.dataset || Math.abs(f - S.frame) > KEEP) { S.loading.delete(f); continue; }
      const datasetId = S.dataset.id, controller = new AbortController();
      S.inflight++;
      S.fetching.set(f, controller);
      fetch(frameUrl(f), { credentials: "same-origin", signal: controller.signal })
        .then((r) => { if (!r.ok) throw new Error("frame " + f + ": HTTP " + r.status); return r.blob(); })
        .then((blob) => createImageBitmap(blob))
        .then((bitmap) => {
          if (!S.dataset || S.dataset.id !== datasetId) { bitmap.close(); return; }
          S.images.set(f, bitmap);
          if (f === S.frame) { schedulePaint(); prefetchAround(f); }
        })
        .catch((e) => { if (e.name !== "AbortError") info.textContent = String(e.message || e); })
        .finally(() => { S.loading.delete(f); S.fetching.delete(f); S.inflight--; pump(); });
    }
  }
  function prefetchAround(f) {
    // A jump elsewhere drops the prefetches around the old frame, queued or in flight: the server decodes one frame
    // of a video at a time, and the frame asked for must not wait behind neighbours nobody will look at.
    S.queue = S.queue.filter((g) => { const keep = Math.abs(g - f) <= KEEP; if (!keep) S.loading.delete(g); return keep; });
    for (const [g, controller] of S.fetching) if (Math.abs(g - f) > KEEP) controller.abort();
    requestFrame(f, true);
    ensureMasks(f);
    // Neighbours only once the frame itself is here: the server decodes one video at a time, so a prefetch sent
    // with a far jump would make the frame the person asked for wait behind it.
    if (!S.images.has(f)) return;
    const ahead = S.playing ? PREFETCH_AHEAD * 2 : PREFETCH_AHEAD;
    for (let i = 1; i <= ahead; i++) requestFrame(f + i, false);
    for (let i = 1; i <= PREFETCH_BEHIND; i++) requestFrame(f - i, false);
    for (const [g, bitmap] of S.images) {
      if (Math.abs(g - f) > KEEP) { bitmap.close(); S.images.delete(g); }
    }
    ensureMasks(f);
    if (f + CHUNK / 2 < S.dataset.frame_count) ensureMasks(f + CHUNK / 2);
  }

  // ---- masks: COCO compressed RLE decoded here (pycocotools' rleFrString) ----------------------------------------
  function decodeCounts(s) {
    const counts = [];
    let p = 0;
    while (p < s.length) {
      let x = 0, k = 0, more = 1;
      while (more) {
        const c = s.charCodeAt(p) - 48;
        x |= (c & 0x1f) << (5 * k);
        more = c & 0x20; p++; k++;
        if (!more && (c & 0x10)) x |= -1 << (5 * k);
      }
      if (counts.length > 2) x += counts[counts.length - 2];
      counts.push(x);
    }
    return counts;
  }

  function ensureMasks(f) {
    if (!S.dataset) return;
    const start = Math.floor(f / CHUNK) * CHUNK;
    if (S.chunks.has(start)) return;
    const revision = S.revision, datasetId = S.dataset.id;
    S.chunks.set(start, "loading");
    fetch("/viewer/masks/" + datasetId + "?start=" + start + "&stop=" + (start + CHUNK), { credentials: "same-origin" })
      .then((r) => { if (!r.ok) throw new Error("masks: HTTP " + r.status); return r.json(); })
      .then((data) => {
        if (!S.dataset || S.dataset.id !== datasetId || S.revision !== revision) return;
        for (let g = start; g < start + CHUNK; g++) S.masks.set(g, data.frames[g] || []);
        S.chunks.set(start, "done");
        if (S.frame >= start && S.frame < start + CHUNK) schedulePaint();
        preloadMasks();
      })
      .catch((e) => { S.chunks.delete(start); info.textContent = String(e.message || e); });
  }

  // Masks are small next to frames (RLE): once the frames around the person are asked for, the masks of the rest of
  // the video come one chunk at a time, nearest first, so a jump anywhere finds its overlays already here.
  function preloadMasks() {
    // Not while a job runs: each of its commits is a new revision, which drops the masks held here.
    if (!S.dataset || S.job || S.chunks.size >= MAX_MASK_CHUNKS) return;
    for (const state of S.chunks.values()) if (state === "loading") return;
    const here = Math.floor(S.frame / CHUNK) * CHUNK;
    for (let d = CHUNK; d < S.dataset.frame_count + CHUNK; d += CHUNK) {
      for (const start of [here + d, here - d]) {
        if (start >= 0 && start < S.dataset.frame_count && !S.chunks.has(start)) { ensureMasks(start); return; }
      }
    }
  }

  function hexToRgb(hex) {
    const n = parseInt(hex.slice(1), 16);
    return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  }

  // A mask as a canvas the size of its bounding box: translucent fill, opaque outline (about 2 screen pixels).
  function maskCanvas(key, counts, colour) {
    let entry = S.maskCanvases.get(key);
    if (entry) return entry;
    const h = S.dataset.height, w = S.dataset.width;
    const runs = decodeCounts(counts);
    let x0 = w, x1 = -1, y0 = h, y1 = -1, pos = 0;
    for (let i = 0; i < runs.length; i++) {
      const n = runs[i];
      if (i % 2 === 1 && n > 0) {
        const a = pos, b = pos + n - 1, ca = Math.floor(a / h), cb = Math.floor(b / h);
        x0 = Math.min(x0, ca); x1 = Math.max(x1, cb);
        if (ca === cb) { y0 = Math.min(y0, a % h); y1 = Math.max(y1, b % h); } else { y0 = 0; y1 = h - 1; }
      }
      pos += n;
    }
    if (x1 < 0) { entry = { empty: true }; S.maskCanvases.set(key, entry); return entry; }
    const bw = x1 - x0 + 1, bh = y1 - y0 + 1;
    const bits = new Uint8Array(bw * bh); // column-major inside the box, like the RLE
    pos = 0;
    for (let i = 0; i < runs.length; i++) {
      const n = runs[i];
      if (i % 2 === 1 && n > 0) {
        for (let p = pos; p < pos + n;) {
          const x = Math.floor(p / h), y = p % h, len = Math.min(pos + n - p, h - y);
          const o = (x - x0) * bh + (y - y0);
          bits.fill(1, o, o + len);
          p += len;
        }
      }
      pos += n;
    }
    const t = Math.max(1, Math.round(w / 700));
    const image = new ImageData(bw, bh), px = new Uint32Array(image.data.buffer);
    const [r, g, b] = hexToRgb(colour);
    const fill = (100 << 24) | (b << 16) | (g << 8) | r, line = (255 << 24) | (b << 16) | (g << 8) | r;
    // Outline: a pixel is on the edge when a pixel off the mask lies within t of it along its row or column. Four
    // linear passes count how deep into its run each pixel is from each side (the box's border counts as off),
    // instead of testing 4t neighbours per pixel: ~2 ms, not ~40, for a large mask at 1080p.
    const edge = new Uint8Array(bw * bh);
    for (let x = 0; x < bw; x++) {
      const o = x * bh;
      for (let y = 0, c = 0; y < bh; y++) { c = bits[o + y] ? c + 1 : 0; if (c && c <= t) edge[o + y] = 1; }
      for (let y = bh - 1, c = 0; y >= 0; y--) { c = bits[o + y] ? c + 1 : 0; if (c && c <= t) edge[o + y] = 1; }
    }
    for (let y = 0; y < bh; y++) {
      for (let x = 0, c = 0; x < bw; x++) { const i = x * bh + y; c = bits[i] ? c + 1 : 0; if (c && c <= t) edge[i] = 1; }
      for (let x = bw - 1, c = 0; x >= 0; x--) { const i = x * bh + y; c = bits[i] ? c + 1 : 0; if (c && c <= t) edge[i] = 1; }
    }
    for (let x = 0; x < bw; x++) {
      for (let y = 0; y < bh; y++) {
        const i = x * bh + y;
        if (bits[i]) px[y * bw + x] = edge[i] ? line : fill;
      }
    }
    const c = document.createElement("canvas");
    c.width = bw; c.height = bh;
    c.getContext("2d").putImageData(image, 0, 0);
    entry = { canvas: c, x: x0, y: y0, w: bw, h: bh };
    S.maskCanvases.set(key, entry);
    if (S.maskCanvases.size > 400) S.maskCanvases.delete(S.maskCanvases.keys().next().value);
    return entry;
  }

  // ---- painting ------------------------------------------------------------------------------------------------
  function schedulePaint() {
    if (S.paintQueued) return;
    S.paintQueued = true;
    requestAnimationFrame(paint);
  }
  function trackById(id) { return S.tracks.find((t) => t.id === id); }

  function paint() {
    S.paintQueued = false;
    if (!S.dataset) { ctx.clearRect(0, 0, canvas.width, canvas.height); info.textContent = "Open a video to start."; return; }
    const f = S.frame, bitmap = S.images.get(f);
    if (!bitmap) { requestFrame(f, true); return; } // painted when it arrives
    const scale = canvas.width / Math.max(1, canvas.clientWidth || canvas.width);
    ctx.drawImage(bitmap, 0, 0);
    const features = S.masks.get(f) || [];
    const pendingHere = S.pending[String(f)] || {};
    const labels = [];
    for (const feature of features) {
      const track = trackById(feature.track_id);
      if (!track || S.hidden.includes(track.id) || !feature.present) continue;
      const chosen = track.id === S.active || S.selected.includes(track.id);
      const edited = pendingHere[String(track.id)];
      let bx = edited && edited.box ? null : feature.box; // an unsaved box replaces the saved one on Save
      if (feature.counts && !edited) {
        const m = maskCanvas(track.id + ":" + f + ":" + S.revision, feature.counts, track.colour);
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
        if (bx === feature.box && editableBox(track.id, f) === feature.box) drawHandles(feature.box, scale);
        labels.push([track, bx, chosen]);
      }
      for (const [x, y, positive] of feature.clicks || []) drawClick(x, y, positive, scale, false);
    }
    for (const [key, counts] of S.pendingMasks) {
      const [tid, pf] = key.split(":").map(Number);
      const track = trackById(tid);
      if (pf !== f || !track) continue;
      const m = maskCanvas("p:" + key, counts, track.colour);
      if (!m.empty) ctx.drawImage(m.canvas, m.x, m.y);
    }
    for (const [tid, seed] of Object.entries(pendingHere)) {
      const track = trackById(Number(tid));
      if (!track) continue;
      if (seed.box) {
        const [x1, y1, x2, y2] = seed.box;
        ctx.lineWidth = 3 * scale; ctx.strokeStyle = track.colour;
        ctx.setLineDash([10 * scale, 5 * scale]);
        ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
        ctx.setLineDash([]);
        if (track.id === S.active) drawHandles(seed.box, scale);
        labels.push([track, seed.box, track.id === S.active, "unsaved"]);
      }
      for (const [x, y, positive] of seed.clicks || []) drawClick(x, y, positive, scale, true);
    }
    if (S.drag && S.drag.moved) {  // the rubber band: a new box, or the box being resized or moved
      const [x1, y1, x2, y2] = dragBox();
      ctx.lineWidth = 2 * scale; ctx.strokeStyle = "#fff"; ctx.setLineDash([6 * scale, 4 * scale]);
      ctx.strokeRect(x1, y1, x2 - x1, y2 - y1); ctx.setLineDash([]);
    }
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
    root.dataset.frame = String(f);
    root.dataset.paintedFrame = String(f);
    root.dataset.overlaysFrame = S.masks.has(f) ? String(f) : "";  // saved boxes (and their handles) are drawn
    const ms = S.keyAt !== null ? performance.now() - S.keyAt : null;
    if (S.masks.has(f)) S.keyAt = null; // a key's time runs until the frame is shown with its overlays
    paintTimeline();
    let unsaved = 0;
    for (const tracks of Object.values(S.pending)) {
      for (const seed of Object.values(tracks)) if (seed.box || (seed.clicks && seed.clicks.length)) unsaved++;
    }
    info.textContent = "Frame " + f + " / " + (S.dataset.frame_count - 1) + (S.playing ? " (playing)" : "") +
      (S.active !== null ? " | drawing on track #" + S.active : " | create a track to draw") +
      (unsaved ? " | " + unsaved + " unsaved seed(s): press S to save" : "");
    emit("painted", { frame: f, ms, masks: S.masks.has(f) });
  }

  function drawClick(x, y, positive, scale, pending) {
    ctx.beginPath();
    ctx.arc(x, y, (pending ? 7 : 5) * scale, 0, 2 * Math.PI);
    ctx.fillStyle = positive ? "#28dc28" : "#e61e1e";
    ctx.fill();
    ctx.lineWidth = 2 * scale; ctx.strokeStyle = "#fff"; ctx.stroke();
  }
  function corners(b) { return [[b[0], b[1]], [b[2], b[1]], [b[0], b[3]], [b[2], b[3]]]; }
  function drawHandles(b, scale) {
    for (const [hx, hy] of corners(b)) {
      ctx.fillStyle = "#fff"; ctx.fillRect(hx - 5 * scale, hy - 5 * scale, 10 * scale, 10 * scale);
      ctx.strokeRect(hx - 5 * scale, hy - 5 * scale, 10 * scale, 10 * scale);
    }
  }

  // ---- navigation ----------------------------------------------------------------------------------------------
  function seek(f, force) {
    if (!S.dataset) { schedulePaint(); return; }
    const g = clampFrame(f);
    const changed = g !== S.frame;
    S.frame = g;
    prefetchAround(g);
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
      prefetchAround(S.frame);
    }
    requestAnimationFrame(playLoop);
  }
  function togglePlay() {
    if (!S.dataset) return;
    S.playing = !S.playing;
    if (S.playing) { if (S.frame >= S.dataset.frame_count - 1) seek(0); requestAnimationFrame(playLoop); }
    schedulePaint();
  }

  function clickButton(id) {
    const b = document.querySelector("#" + id);
    if (b) b.click();
  }

  function selectNextTrack() {
    if (!S.tracks.length) return;
    const i = S.tracks.findIndex((t) => t.id === S.active);
    S.active = S.tracks[(i + 1) % S.tracks.length].id;
    renderTrackList(); writeBack(); schedulePaint();
  }

  document.addEventListener("keydown", (e) => {
    const t = e.target, tag = t && t.tagName ? t.tagName.toLowerCase() : "";
    // Keys typed into a text field are the person's text; a ticked checkbox keeps the keys for the viewer.
    const typing = tag === "input" && !["checkbox", "radio", "button", "range"].includes(t.type);
    if (typing || tag === "textarea" || tag === "select" || (t && t.isContentEditable)) return;
    if (!S.dataset || !root.isConnected || root.offsetParent === null) return; // not on the visible tab
    const step = e.shiftKey ? 10 : 1;
    if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
      e.preventDefault();
      S.keyAt = performance.now();
      seek(S.frame + (e.key === "ArrowRight" ? step : -step));
    } else if (e.key === " ") {
      e.preventDefault(); togglePlay();
    } else if (e.key === "s" && !e.ctrlKey && !e.metaKey) {
      e.preventDefault(); clickButton("save-button");
    } else if (e.key === "t") {
      e.preventDefault(); clickButton("track-button");
    } else if (e.key === "n") {
      e.preventDefault(); selectNextTrack();
    } else if (e.key === "Escape") {
      S.drag = null; schedulePaint();
    }
  });

  // ---- drawing: drag = box (rubber band), corner handles resize and a drag inside moves the active track's box
  // (unsaved, or its saved keyframe's on this frame), click = + point, shift-click = - point ----------------------
  function toVideo(e) {
    const r = canvas.getBoundingClientRect();
    const x = (e.clientX - r.left) * canvas.width / r.width, y = (e.clientY - r.top) * canvas.height / r.height;
    return [Math.max(0, Math.min(canvas.width - 1, x)), Math.max(0, Math.min(canvas.height - 1, y))];
  }
  function seedOf(frame, trackId, create) {
    const fk = String(frame), tk = String(trackId);
    if (!S.pending[fk]) { if (!create) return null; S.pending[fk] = {}; }
    if (!S.pending[fk][tk]) { if (!create) return null; S.pending[fk][tk] = { box: null, clicks: [] }; }
    return S.pending[fk][tk];
  }
  // The box the active track's handles adjust on a frame: its unsaved box, else its saved keyframe's box (dragging
  // that one makes it an unsaved edit of the keyframe, saved like a box drawn there). null when it has neither.
  function editableBox(trackId, frame) {
    if (trackId === null || trackId !== S.active) return null;
    const seed = seedOf(frame, trackId, false);
    if (seed && seed.box) return seed.box;
    const saved = savedKeyframe(trackId, frame);
    return saved ? saved.box : null;
  }
  function savedKeyframe(trackId, frame) {
    const feature = (S.masks.get(frame) || []).find((g) => g.track_id === trackId);
    return feature && feature.keyframe && feature.present && feature.box ? feature : null;
  }
  // S.drag.mode: "new" (rubber band from the press point), "resize" (corner `corner` of `box` follows the mouse),
  // "move" (the whole box follows it). Resize and move add the mouse's travel to the box's own edges, so a box is
  // never shifted by the distance between the press and the exact corner.
  function dragBox(d = S.drag) {
    if (d.mode === "new") {
      return [Math.min(d.x0, d.x1), Math.min(d.y0, d.y1), Math.max(d.x0, d.x1), Math.max(d.y0, d.y1)];
    }
    const dx = Math.round(d.x1 - d.x0), dy = Math.round(d.y1 - d.y0), b = d.box;
    if (d.mode === "move") {
      const mx = Math.max(-b[0], Math.min(canvas.width - b[2], dx));  // the box stays inside the frame
      const my = Math.max(-b[1], Math.min(canvas.height - b[3], dy));
      return [b[0] + mx, b[1] + my, b[2] + mx, b[3] + my];
    }
    const e = b.slice();
    const xi = d.corner % 2 === 0 ? 0 : 2, yi = d.corner < 2 ? 1 : 3; // corners(): [x1y1, x2y1, x1y2, x2y2]
    e[xi] = Math.max(0, Math.min(canvas.width, b[xi] + dx));
    e[yi] = Math.max(0, Math.min(canvas.height, b[yi] + dy));
    return [Math.min(e[0], e[2]), Math.min(e[1], e[3]), Math.max(e[0], e[2]), Math.max(e[1], e[3])];
  }
  // The box a finished drag gives, in video pixels (a new box covers the pixels under both ends: x2/y2 exclusive).
  function finalBox(d) {
    if (d.mode !== "new") return dragBox(d);
    const [x1, y1, x2, y2] = dragBox(d).map((v) => Math.round(v));
    return [x1, y1, Math.min(canvas.width, x2 + 1), Math.min(canvas.height, y2 + 1)];
  }
  canvas.addEventListener("mousedown", (e) => {
    if (!S.dataset || e.button !== 0) return;
    e.preventDefault();
    const [x, y] = toVideo(e);
    const scale = canvas.width / canvas.getBoundingClientRect().width;
    const start = { x0: x, y0: y, x1: x, y1: y, moved: false, frame: S.frame, shift: e.shiftKey, mode: "new" };
    const box = S.active !== null ? editableBox(S.active, S.frame) : null;
    if (box) {
      const cs = corners(box);
      for (let i = 0; i < 4; i++) {
        if (Math.abs(cs[i][0] - x) < 10 * scale && Math.abs(cs[i][1] - y) < 10 * scale) {
          S.drag = Object.assign(start, { mode: "resize", corner: i, box: box.slice() });
          return;
        }
      }
      // Inside the box: a drag moves it; a click (no drag) is still a + or - point, as on a handle.
      if (x >= box[0] && x <= box[2] && y >= box[1] && y <= box[3]) {
        S.drag = Object.assign(start, { mode: "move", box: box.slice() });
        return;
      }
    }
    S.drag = start;
  });
  window.addEventListener("mousemove", (e) => {
    if (!S.drag) return;
    const [x, y] = toVideo(e);
    S.drag.x1 = x; S.drag.y1 = y;
    const scale = canvas.width / canvas.getBoundingClientRect().width;
    // Until the mouse travels a few pixels a press is a click (a + or - point, also on a handle or inside a box).
    const slack = (S.drag.mode === "resize" ? 3 : 6) * scale;
    if (Math.abs(x - S.drag.x0) + Math.abs(y - S.drag.y0) > slack) S.drag.moved = true;
    schedulePaint();
  });
  window.addEventListener("mouseup", () => {
    const d = S.drag;
    if (!d) return;
    S.drag = null;
    if (S.active === null) { info.textContent = "Create or select a track first."; schedulePaint(); return; }
    if (d.frame !== S.frame) { schedulePaint(); return; }
    if (d.moved) {
      const b = finalBox(d);
      if (b[2] - b[0] < 3 || b[3] - b[1] < 3) { schedulePaint(); return; }
      const seed = seedOf(d.frame, S.active, true);
      const saved = !seed.box && d.mode !== "new" ? savedKeyframe(S.active, d.frame) : null;
      // A box edit replaces the keyframe's box and clicks on Save: carry its saved clicks over, so only the box
      // changes (clicks added since stay too).
      if (saved) seed.clicks = (saved.clicks || []).map((c) => c.slice()).concat(seed.clicks);
      seed.box = b;
      writeBack();
      emit("box", { frame: d.frame, track_id: S.active, box: b });
    } else {
      const click = [Math.round(d.x0 * 10) / 10, Math.round(d.y0 * 10) / 10, !d.shift];
      seedOf(d.frame, S.active, true).clicks.push(click);
      writeBack();
      emit("click", { frame: d.frame, track_id: S.active, x: click[0], y: click[1], positive: click[2] });
    }
    emit("pending", { pending: S.pending });
    schedulePaint();
  });

  // ---- track list: active track (drawn on), multi-select (tracked together), visibility ------------------------
  function renderTrackList() {
    trackList.textContent = "";
    for (const t of S.tracks) {
      const row = document.createElement("div");
      row.className = "sv-track" + (t.id === S.active ? " sv-active" : "");
      row.dataset.trackId = String(t.id);
      const select = document.createElement("input");
      select.type = "checkbox"; select.className = "sv-select"; select.title = "Select for tracking";
      select.checked = S.selected.includes(t.id);
      select.addEventListener("change", () => {
        S.selected = select.checked ? [...new Set([...S.selected, t.id])] : S.selected.filter((i) => i !== t.id);
        writeBack(); schedulePaint();
      });
      const swatch = document.createElement("span");
      swatch.className = "sv-swatch"; swatch.style.background = t.colour;
      const name = document.createElement("span");
      name.className = "sv-name";
      name.textContent = "#" + t.id + " " + t.label + (t.begin !== null && t.begin !== undefined ?
        " (" + t.begin + "-" + t.end + ")" : " (empty)");
      const eye = document.createElement("button");
      eye.className = "sv-eye"; eye.type = "button";
      eye.textContent = S.hidden.includes(t.id) ? "show" : "hide";
      eye.addEventListener("click", (e) => {
        e.stopPropagation();
        S.hidden = S.hidden.includes(t.id) ? S.hidden.filter((i) => i !== t.id) : [...S.hidden, t.id];
        renderTrackList(); writeBack(); schedulePaint();
      });
      row.addEventListener("click", (e) => {
        if (e.target === select) return;
        S.active = t.id; renderTrackList(); writeBack(); schedulePaint();
      });
      row.append(select, swatch, name, eye);
      trackList.append(row);
    }
  }

  // ---- timeline: one row per track; keyframes, tracked frames, absent frames, job progress; click to seek -------
  function loadTimeline() {
    if (!S.dataset || S.timeline === "loading") return;
    if (S.timeline && S.timeline.revision === S.revision && S.timeline.dataset_id === S.dataset.id) return;
    const datasetId = S.dataset.id, revision = S.revision;
    S.timeline = "loading";
    fetch("/viewer/timeline/" + datasetId, { credentials: "same-origin" })
      .then((r) => { if (!r.ok) throw new Error("timeline: HTTP " + r.status); return r.json(); })
      .then((data) => {
        if (!S.dataset || S.dataset.id !== datasetId) return;
        data.revision = revision;
        S.timeline = data;
        renderAbsent(); paintTimeline();
      })
      .catch((e) => { S.timeline = null; info.textContent = String(e.message || e); });
  }
  const ROW = 14, HEAD = 12;
  function paintTimeline() {
    const data = S.timeline && S.timeline !== "loading" ? S.timeline : null;
    const rows = data ? data.tracks.length : 0;
    const width = timeline.clientWidth || 800;
    if (timeline.width !== width) timeline.width = width;
    const height = HEAD + Math.max(1, rows) * ROW + 4;
    if (timeline.height !== height) timeline.height = height;
    tctx.clearRect(0, 0, width, height);
    if (!S.dataset) return;
    const n = S.dataset.frame_count, fx = (f) => (f / n) * width, fw = Math.max(1, width / n);
    tctx.fillStyle = "#222"; tctx.fillRect(0, 0, width, height);
    if (S.job && S.job.frames && S.job.frames.length === 2) {
      const [a, b] = S.job.frames;
      tctx.fillStyle = "#555"; tctx.fillRect(fx(a), 2, fx(b + 1) - fx(a), HEAD - 6);
      if (S.job.current !== null && S.job.current !== undefined) {
        const lo = Math.min(S.job.start, S.job.current), hi = Math.max(S.job.start, S.job.current);
        tctx.fillStyle = "#4caf50"; tctx.fillRect(fx(lo), 2, fx(hi + 1) - fx(lo), HEAD - 6);
      }
    }
    if (data) data.tracks.forEach((t, i) => {
      const track = trackById(t.track_id), y = HEAD + i * ROW, colour = track ? track.colour : "#888";
      if (t.track_id === S.active) { tctx.fillStyle = "#333"; tctx.fillRect(0, y, width, ROW); }
      tctx.fillStyle = colour; tctx.globalAlpha = 0.55;
      for (const f of t.tracked) tctx.fillRect(fx(f), y + 4, fw, ROW - 8);
      tctx.globalAlpha = 1;
      for (const f of t.keyframes) tctx.fillRect(fx(f), y + 1, Math.max(2, fw), ROW - 2);
      tctx.fillStyle = "#ff3b3b";
      for (const f of t.absent) tctx.fillRect(fx(f), y + ROW - 4, Math.max(2, fw), 3);
    });
    tctx.fillStyle = "#fff";
    tctx.fillRect(fx(S.frame), 0, Math.max(2, fw), height);
  }
  timeline.addEventListener("mousedown", (e) => {
    if (!S.dataset) return;
    const r = timeline.getBoundingClientRect();
    seek(Math.floor(((e.clientX - r.left) / r.width) * S.dataset.frame_count));
  });
  function renderAbsent() {
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
        a.addEventListener("click", () => seek(f));
        line.append(a);
      }
      if (t.absent.length > 30) line.append(" ...");
      absentList.append(line);
    }
  }

  root.querySelector(".sv-play").addEventListener("click", togglePlay);
  root.querySelector(".sv-prev").addEventListener("click", () => seek(S.frame - 1));
  root.querySelector(".sv-next").addEventListener("click", () => seek(S.frame + 1));
  root.querySelector(".sv-back10").addEventListener("click", () => seek(S.frame - 10));
  root.querySelector(".sv-fwd10").addEventListener("click", () => seek(S.frame + 10));
  new ResizeObserver(() => { paintTimeline(); schedulePaint(); }).observe(root);

  watch("value", () => applyValue(props.value));
  applyValue(props.value);
})();

// The instant SAM2 preview (ui/preview.py's panel). Runs as gr.HTML's js_on_load: Gradio provides `element`.
//
// It hooks into the frame viewer (web/static/viewer.js, window.sam2Viewer): on every "pending" event (a box drag or
// a +/- click) it posts the active track's unsaved box and clicks on the current frame to /viewer/preview/<video>,
// and draws the answer with setPendingMask(). While a request is out, newer edits wait and only the latest is sent
// (clicks are never answered out of order). "Accept" saves the seed like any edit (the viewer's Save); "Clear"
// drops the seed and its mask. A mask stays on screen only while its seed is unsaved.
//
// For tests and benchmarks: window.sam2Preview.answers lists every answer {seq, frame, track, ms, present,
// counts, encoded, error}; ms runs from the edit to the mask being handed to the viewer.
(function () {
  const root = element.querySelector(".pv-root");
  if (!root || root.dataset.ready) return;
  root.dataset.ready = "1";
  const status = root.querySelector(".pv-status");
  const enabled = root.querySelector(".pv-on");
  // shown: "track:frame" keys of the masks this panel drew; a mask is shown only while its seed is unsaved.
  const P = { seq: 0, inflight: false, next: null, answers: [], hooked: null, shown: new Set() };
  window.sam2Preview = P;

  function say(text, error) {
    status.textContent = text;
    status.classList.toggle("pv-error", !!error);
  }
  function dropdownValue(id) {
    const input = document.querySelector("#" + id + " input");
    return input && input.value ? input.value : null;
  }
  function target() {
    const v = window.sam2Viewer;
    if (!v) return null;
    const st = v.state();
    if (!st.dataset || st.active === null || st.active === undefined) return null;
    const seed = (st.pending[String(st.frame)] || {})[String(st.active)] || null;
    return { dataset: st.dataset.id, frame: st.frame, track: st.active, seed, at: performance.now() };
  }
  function hasPrompt(seed) {
    return !!seed && (!!seed.box || (seed.clicks || []).length > 0);
  }

  function ask(t) {
    const v = window.sam2Viewer;
    if (!t || !v) return;
    if (!hasPrompt(t.seed)) { v.setPendingMask(t.track, t.frame, null); return; }
    if (P.inflight) { P.next = t; return; }
    P.inflight = true;
    const seq = ++P.seq;
    say("SAM2 preview…", false);
    const body = {
      frame_idx: t.frame, track_id: t.track, box: t.seed.box || null, clicks: t.seed.clicks || [],
      model: dropdownValue("track-model"), queue: dropdownValue("track-queue"),
    };
    fetch("/viewer/preview/" + t.dataset, {
      method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    })
      .then((r) => r.json().then((data) => ({ ok: r.ok, data }), () => ({ ok: false, data: {} })))
      .then(({ ok, data }) => {
        const ms = performance.now() - t.at;
        if (!ok) {
          const message = data.error || (typeof data.detail === "string" ? data.detail : "The preview failed.");
          v.setPendingMask(t.track, t.frame, null);
          say(message, true);
          record({ seq, frame: t.frame, track: t.track, ms, error: message });
          return;
        }
        v.setPendingMask(t.track, t.frame, data.present ? data.counts : null);
        if (data.present) P.shown.add(t.track + ":" + t.frame);
        say(data.present
          ? `Preview: ${Math.round(ms)} ms${data.encoded ? "" : " (frame features reused)"}. Accept (A) or refine.`
          : "SAM2 sees no object for these prompts: add a positive click or redraw the box.", !data.present);
        record({ seq, frame: t.frame, track: t.track, ms, present: data.present, counts: data.counts,
          encoded: data.encoded, compute_ms: data.compute_ms, wait_ms: data.wait_ms });
      })
      .catch((e) => {
        say("The preview failed: " + e, true);
        record({ seq, frame: t.frame, track: t.track, ms: performance.now() - t.at, error: String(e) });
      })
      .finally(() => {
        P.inflight = false;
        const later = P.next;
        P.next = null;
        if (later) ask(later);
      });
  }
  // A pending mask belongs to an unsaved seed: once the seed is saved (Accept, S), discarded or cleared, its mask
  // goes too (the saved keyframe keeps the prompts, and a job gives exactly this mask again).
  function reconcile() {
    const v = window.sam2Viewer;
    if (!v || !P.shown.size) return;
    const pending = v.state().pending || {};
    for (const key of Array.from(P.shown)) {
      const [track, frame] = key.split(":");
      if (!hasPrompt((pending[frame] || {})[track])) {
        P.shown.delete(key);
        v.setPendingMask(Number(track), Number(frame), null);
      }
    }
  }
  function record(answer) {
    P.answers.push(answer);
    root.dispatchEvent(new CustomEvent("pv:answer", { detail: answer }));
  }

  function accept() {
    const t = target();
    if (!t || !hasPrompt(t.seed)) { say("Nothing to accept: drag a box or click on the object first.", true); return; }
    const save = document.querySelector("#save-button");
    if (save) {
      save.click();
      say("Accepted: saved as this frame's keyframe; tracking from it gives exactly this mask here.", false);
    }
  }
  function clear() {
    const v = window.sam2Viewer;
    const t = target();
    if (!v || !t) return;
    v.setPendingMask(t.track, t.frame, null);
    if (v.clearPending) v.clearPending(t.track, t.frame);
    say("Cleared.", false);
  }
  root.querySelector(".pv-accept").addEventListener("click", accept);
  root.querySelector(".pv-clear").addEventListener("click", clear);
  window.addEventListener("keydown", (e) => {
    const el = e.target, tag = el && el.tagName ? el.tagName.toLowerCase() : "";
    if (tag === "input" || tag === "textarea" || tag === "select" || (el && el.isContentEditable)) return;
    if (e.ctrlKey || e.metaKey || e.altKey || root.offsetParent === null) return;
    if (e.key === "a") { e.preventDefault(); accept(); }
    else if (e.key === "c") { e.preventDefault(); clear(); }
  });

  // The viewer may load after this panel: hook into it once it is there (and again if it is rebuilt).
  function hook() {
    const v = window.sam2Viewer;
    if (v && P.hooked !== v) {
      P.hooked = v;
      v.on("pending", () => { if (enabled.checked) ask(target()); });
      v.on("painted", reconcile);
    }
  }
  hook();
  setInterval(hook, 500);
})();

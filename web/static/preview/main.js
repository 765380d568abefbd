// The instant SAM2 preview (ui/seed_preview.py's panel), entry module. Runs as gr.HTML's js_on_load (web/js_modules.py
// builds that script from these modules): Gradio provides `element`.
//
// It hooks into the frame viewer (web/static/viewer/, window.sam2Viewer): on every "pending" event (a box drag or
// a +/- click) it posts the active track's unsaved box and clicks on the current frame to /viewer/preview/<video>,
// and draws the answer with setPendingMask(). While a request is out, newer edits wait and only the latest is sent
// (clicks are never answered out of order). "Accept" saves the seed like any edit (the viewer's Save); "Clear"
// drops the seed and its mask. A mask stays on screen only while its seed is unsaved. The decisions are in
// prompt.js.
//
// For tests and benchmarks: window.sam2Preview.answers lists every answer {seq, frame, track, ms, present,
// counts, encoded, error}; ms runs from the edit to the mask being handed to the viewer.
import { answerStatus, hasPrompt, offer, previewBody, previewTarget, settle, staleMasks } from "./prompt.js";

export function mount({ element }) {
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
    return v ? previewTarget(v.state(), performance.now()) : null;
  }

  function ask(t) {
    const v = window.sam2Viewer;
    if (!t || !v) return;
    if (!hasPrompt(t.seed)) { v.setPendingMask(t.track, t.frame, null); return; }
    if (offer(P, t) === null) return;
    const seq = ++P.seq;
    say("SAM2 preview…", false);
    fetch("/viewer/preview/" + t.dataset, {
      method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(previewBody(t, dropdownValue("track-model"), dropdownValue("track-queue"))),
    })
      .then((r) => r.json().then((data) => ({ ok: r.ok, data }), () => ({ ok: false, data: {} })))
      .then(({ ok, data }) => {
        const ms = performance.now() - t.at;
        const [text, error] = answerStatus(ok, data, ms);
        v.setPendingMask(t.track, t.frame, ok && data.present ? data.counts : null);
        if (ok && data.present) P.shown.add(t.track + ":" + t.frame);
        say(text, error);
        record(ok ? { seq, frame: t.frame, track: t.track, ms, present: data.present, counts: data.counts,
          encoded: data.encoded, compute_ms: data.compute_ms, wait_ms: data.wait_ms }
          : { seq, frame: t.frame, track: t.track, ms, error: text });
      })
      .catch((e) => {
        say("The preview failed: " + e, true);
        record({ seq, frame: t.frame, track: t.track, ms: performance.now() - t.at, error: String(e) });
      })
      .finally(() => { const later = settle(P); if (later) ask(later); });
  }
  // A pending mask belongs to an unsaved seed: once the seed is saved (Accept, S), discarded or cleared, its mask
  // goes too.
  function reconcile() {
    const v = window.sam2Viewer;
    if (!v || !P.shown.size) return;
    for (const key of staleMasks(P.shown, v.state().pending || {})) {
      const [track, frame] = key.split(":");
      P.shown.delete(key);
      v.setPendingMask(Number(track), Number(frame), null);
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
}

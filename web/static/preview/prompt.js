// The seed preview's decisions, pure (tested by node): what to preview, the request, which answers to show, and
// which masks go once their seeds are saved or dropped.

// What a preview is of: the active track's unsaved seed on the frame on screen, from the viewer's state(); null
// when no video is open or no track is active.
export function previewTarget(state, at) {
  if (!state.dataset || state.active === null || state.active === undefined) return null;
  const seed = (state.pending[String(state.frame)] || {})[String(state.active)] || null;
  return { dataset: state.dataset.id, frame: state.frame, track: state.active, seed, at };
}

export function hasPrompt(seed) {
  return !!seed && (!!seed.box || (seed.clicks || []).length > 0);
}

// The body of POST /viewer/preview/<video> (ui/seed_preview.py); model and queue from the Track panel's dropdowns.
export function previewBody(target, model, queue) {
  return { frame_idx: target.frame, track_id: target.track, box: target.seed.box || null,
    clicks: target.seed.clicks || [], model, queue };
}

// One request at a time, the latest edit next: while one is out, a newer edit replaces any waiting one, so clicks
// are never answered out of order and a burst of edits costs two requests. P: {inflight, next}.
// offer() returns the target to send now, or null (it waits in P.next); settle() ends a request and returns the
// waiting target to send, if any.
export function offer(P, target) {
  if (P.inflight) { P.next = target; return null; }
  P.inflight = true;
  return target;
}
export function settle(P) {
  P.inflight = false;
  const later = P.next;
  P.next = null;
  return later;
}

// The status line for an answer: [text, isError].
export function answerStatus(ok, data, ms) {
  if (!ok) {
    return [data.error || (typeof data.detail === "string" ? data.detail : "The preview failed."), true];
  }
  if (!data.present) {
    return ["SAM2 sees no object for these prompts: add a positive click or redraw the box.", true];
  }
  return [`Preview: ${Math.round(ms)} ms${data.encoded ? "" : " (frame features reused)"}. Accept (A) or refine.`,
    false];
}

// The "track:frame" keys of shown masks whose seeds no longer hold a prompt (saved, discarded or cleared): a pending
// mask belongs to an unsaved seed, and the saved keyframe gives exactly that mask again when tracked.
export function staleMasks(shown, pending) {
  return Array.from(shown).filter((key) => {
    const [track, frame] = key.split(":");
    return !hasPrompt((pending[frame] || {})[track]);
  });
}

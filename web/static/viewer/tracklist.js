// The track list beside the frame: a click on a row makes its track the active one (drawn on), the checkbox selects
// it for tracking (several are tracked together), the eye button hides or shows it.
import { setSelected, toggleHidden } from "./state.js";

function trackName(t) {
  return "#" + t.id + " " + t.label + (t.begin !== null && t.begin !== undefined ? " (" + t.begin + "-" + t.end + ")" :
    " (empty)");
}

// V: the viewer (main.js); every change is written back to Python and repainted.
export function renderTrackList(V) {
  const { S, trackList } = V;
  const changed = (rerender) => { if (rerender) renderTrackList(V); V.writeBack(); V.schedulePaint(); };
  trackList.textContent = "";
  for (const t of S.tracks) {
    const row = document.createElement("div");
    row.className = "sv-track" + (t.id === S.active ? " sv-active" : "");
    row.dataset.trackId = String(t.id);
    const select = document.createElement("input");
    select.type = "checkbox"; select.className = "sv-select"; select.title = "Select for tracking";
    select.checked = S.selected.includes(t.id);
    select.addEventListener("change", () => { setSelected(S, t.id, select.checked); changed(false); });
    const swatch = document.createElement("span");
    swatch.className = "sv-swatch"; swatch.style.background = t.colour;
    const name = document.createElement("span");
    name.className = "sv-name";
    name.textContent = trackName(t);
    const eye = document.createElement("button");
    eye.className = "sv-eye"; eye.type = "button";
    eye.textContent = S.hidden.includes(t.id) ? "show" : "hide";
    eye.addEventListener("click", (e) => { e.stopPropagation(); toggleHidden(S, t.id); changed(true); });
    row.addEventListener("click", (e) => {
      if (e.target === select) return;
      S.active = t.id; changed(true);
    });
    row.append(select, swatch, name, eye);
    trackList.append(row);
  }
}

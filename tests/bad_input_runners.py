"""How tests/test_bad_input.py runs its table: the Case record, the acts a case performs (upload, import, save
seeds, track, add a model, validate a config), and the two places they run: in-process through the functions the
UI handlers call, or against the real app in a subprocess through gradio_client."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets"
REMOTE_ZIP_BYTES = 64 * 1024**2  # the app subprocess's SAM2T_MAX_ZIP_BYTES, so a bomb stays a few hundred KB
REMOTE_ZIP_MEMBERS = 500
REMOTE_UPLOAD_BYTES = 2 * 1024**2  # the app subprocess's SAM2T_MAX_UPLOAD_BYTES (Gradio's max_file_size)


@dataclass(frozen=True)
class Case:
    case_id: str
    area: str  # upload, import, seed, track, model, config
    act: Callable  # act(ctx) -> None, expected to raise
    message: str  # a regex the error's text must match
    remote: bool = False  # run against the app subprocess (crash-class)


def upload(name: str, data: bytes | Callable[[], bytes], **limits):
    def act(ctx):
        return ctx.upload(name, data() if callable(data) else data, limits)
    return act


def import_(name: str, data: bytes | Callable[[], bytes], fmt: str = "Detect from the file", dataset="video"):
    def act(ctx):
        return ctx.import_file(name, data() if callable(data) else data, fmt, dataset)
    return act


def seed(pending: dict | Callable, **value):
    """Save, as the Save button sends it: the viewer's value (untrusted JSON) with its unsaved seeds."""
    def act(ctx):
        return ctx.save(pending(ctx) if callable(pending) else pending, value)
    return act


def track(model="ready-model", queue="cpu", num_frames=0, direction="forward", batch_size="100", notify=5,
          **value):
    """Track, as the track button sends it: the viewer's value plus the tracking controls' values."""
    def act(ctx):
        return ctx.track(value, model, queue, num_frames, direction, batch_size, notify)
    return act


def add_model(name="mine", config="configs/sam2.1/sam2.1_hiera_t.yaml", url="http://127.0.0.1:9/model.pt"):
    def act(ctx):
        return ctx.add_model(name, config, url)
    return act


def config_text(text: str | Callable[[], str]):
    def act(ctx):
        from sam2_tracking.models.config import validate_config

        validate_config(text() if callable(text) else text)
    return act


def _box(*values):
    from sam2_tracking.types import Box

    return Box(*values)


def _on(frame, box=None, clicks=None, track_id="own"):
    """pending = {frame: {track: seed}} as the viewer sends it; track_id "own"/"other" is resolved per context."""
    def make(ctx):
        tid = {"own": ctx.track_id, "other": ctx.other_track_id}.get(track_id, track_id)
        seed_value = {}
        if box is not None:
            seed_value["box"] = box
        if clicks is not None:
            seed_value["clicks"] = clicks
        return {str(frame): {str(tid): seed_value}}
    return make


class InProcess:
    """The functions behind the UI's handlers, on a real SQLite store with the sample clip and sequence added."""

    def __init__(self, tmp: Path) -> None:
        from queues.catalogue import ensure_default_models
        from sam2_tracking.library import add_video
        from sam2_tracking.settings import Settings
        from sam2_tracking.store import CreateTrack, UpsertKeyframe, open_store
        from ui.annotate import AnnotateHandlers

        self.tmp = tmp
        self.settings = Settings(data_dir=tmp / "data", model_dir=tmp / "data" / "models", embedded_consumers=())
        self.settings.data_dir.mkdir(parents=True)
        self.store = open_store(self.settings.store_path)
        ensure_default_models(self.store)
        self.store.set_setting("sam2_enabled", True)
        self.store.upsert_model("ready-model", "configs/sam2.1/sam2.1_hiera_t.yaml", "http://127.0.0.1:9/m.pt",
                                is_default=False, status="ready")
        self.dataset = add_video(self.store, ASSETS / "sample_shapes.mp4")
        self.other = add_video(self.store, ASSETS / "sample_sequence.zip")
        saved = self.store.save_edits(self.dataset.dataset_id, self.dataset.revision, [
            CreateTrack(label="fish"), UpsertKeyframe(track_id=-1, frame_idx=0, box=_box(10, 10, 60, 60))])
        self.track_id = saved.track_ids[-1]
        self.other_track_id = self.store.save_edits(self.other.dataset_id, self.other.revision,
                                                    [CreateTrack(label="x")]).track_ids[-1]
        self.store.set_setting("tracking_enabled", True)
        self.handlers = AnnotateHandlers(self.settings, self.store)
        self.counter = 0

    def db_path(self) -> Path:
        return self.settings.store_path

    def alive(self) -> bool:
        """This process is the app: alive means its store still takes a write and reads it back (a refusal that
        left a transaction open or the writer locked fails here)."""
        self.counter += 1
        self.store.set_setting("bad_input_probe", self.counter)
        return self.store.get_setting("bad_input_probe") == self.counter

    def _file(self, name: str, data: bytes) -> Path:
        self.counter += 1
        folder = self.tmp / "uploads" / str(self.counter)
        folder.mkdir(parents=True)
        (folder / name).write_bytes(data)
        return folder / name

    def upload(self, name, data, limits):
        import dataclasses

        from sam2_tracking.library import add_uploaded_video

        settings = dataclasses.replace(self.settings, **limits)
        before = sorted(settings.video_dir.glob("*")) if settings.video_dir.exists() else []
        try:
            add_uploaded_video(self.store, settings, self._file(name, data))
        finally:
            after = sorted(settings.video_dir.glob("*")) if settings.video_dir.exists() else []
            assert after == before, "a refused upload left a file in the video folder"

    def import_file(self, name, data, fmt, dataset):
        from ui.annotation_files import import_file

        path = None if name is None else str(self._file(name, data))
        dataset_id = None if dataset is None else self.dataset.dataset_id
        import_file(self.store, dataset_id, self.store.get_revision(self.dataset.dataset_id), path, fmt, False,
                    settings=self.settings)

    def _value(self, overrides: dict):
        from ui import viewer

        value = viewer.dataset_value(self.store, self.dataset.dataset_id, None, seek=0).to_json()
        value["active"] = self.track_id
        for key, item in overrides.items():
            value[key] = item
        if value.get("selected") == "other":
            value["selected"] = [self.other_track_id]
        pending = value.get("pending") or {}
        value["pending"] = {f: {str(self.track_id) if t == "own" else t: v for t, v in tracks.items()}
                            for f, tracks in pending.items()}
        return viewer.read_value(json.loads(json.dumps(value)))  # what the browser sends back is JSON

    def save(self, pending, overrides):
        self.handlers.save(self._value({"pending": pending, **overrides}))

    def rename(self, label):
        self.handlers.rename_track(self._value({}), label)

    def track(self, overrides, model, queue, num_frames, direction, batch_size, notify):
        self.handlers.start_tracking(self._value(overrides), model, queue, num_frames, direction, batch_size,
                                     notify, owner="ann")

    def add_model(self, name, config, url):
        from ui.admin import add_custom_model

        add_custom_model(self.settings, self.store, name, config, url, None)

    def download_model(self, name):
        from ui.admin import download_model

        download_model(self.settings, self.store, name, False, None)

    def remove_model(self, name):
        from ui.admin import remove_model

        remove_model(self.settings, self.store, name, None)


class Remote:
    """The real app (python app.py) in a subprocess, driven through gradio_client like a browser."""

    def __init__(self, tmp: Path) -> None:
        from sam2_tracking.testing.app_server import AppServer

        self.tmp = tmp
        data_dir = tmp / "data"
        self.server = AppServer(data_dir, data_dir / "models", SAM2T_EMBED_CONSUMERS="none",
                                SAM2T_MAX_ZIP_BYTES=str(REMOTE_ZIP_BYTES), SAM2T_MAX_ZIP_MEMBERS=str(REMOTE_ZIP_MEMBERS),
                                SAM2T_MAX_UPLOAD_BYTES=str(REMOTE_UPLOAD_BYTES))
        self.data_dir = data_dir
        self.counter = 0

    def db_path(self) -> Path:
        return self.data_dir / "store.db"

    def alive(self) -> bool:
        import httpx

        return self.server.process.poll() is None and httpx.get(self.server.url, timeout=10).status_code == 200

    def _client(self):
        from gradio_client import Client

        return Client(self.server.url, verbose=False, analytics_enabled=False, download_files=False)

    def _file(self, name: str, data: bytes) -> Path:
        self.counter += 1
        folder = self.tmp / "uploads" / str(self.counter)
        folder.mkdir(parents=True)
        (folder / name).write_bytes(data)
        return folder / name

    def _call(self, client, api_name: str, by_component: dict):
        """Call an endpoint with one value per parameter, chosen by the parameter's component kind (the layout
        passes some inputs as a set, so their order is not fixed). A refusal is a raised error, or a returned
        status that says the file was not added/imported: the message is raised here for the table to check."""
        endpoint = client.view_api(return_format="dict", print_info=False)["named_endpoints"][api_name]
        args = []
        for parameter in endpoint["parameters"]:
            kind = parameter["component"]
            args.append(by_component[kind] if kind in by_component else parameter.get("parameter_default"))
        result = client.predict(*args, api_name=api_name)
        for item in result if isinstance(result, (list, tuple)) else [result]:
            if isinstance(item, str) and re.search(r"Not added|Nothing was imported|not added", item):
                raise RuntimeError(item)
        return result

    def raw_upload(self, name, data):
        """POST to Gradio's upload route as a browser does, bypassing gradio_client's own size check: the server
        must refuse it (max_file_size) while it streams in."""
        import httpx

        response = httpx.post(self.server.url + "gradio_api/upload", files={"files": (name, data)}, timeout=60)
        if response.status_code >= 400:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text}")

    def upload(self, name, data, limits):
        from gradio_client import handle_file

        assert not limits, "the app subprocess has fixed limits"
        self._call(self._client(), "/upload_video", {"File": handle_file(str(self._file(name, data)))})

    def import_file(self, name, data, fmt, dataset):
        import sqlite3

        from gradio_client import handle_file

        conn = sqlite3.connect(self.db_path())
        try:
            dataset_id = conn.execute("SELECT dataset_id FROM datasets WHERE name = 'sample_shapes.mp4'").fetchone()[0]
        finally:
            conn.close()
        client = self._client()
        opened = self._call(client, "/open_dataset", {"Dropdown": dataset_id})
        viewer = opened[0] if isinstance(opened, (list, tuple)) else opened
        self._call(client, "/import_annotations", {"Html": viewer, "File": handle_file(str(self._file(name, data))),
                                                   "Dropdown": fmt, "Checkbox": False})

    def stop(self) -> None:
        self.server.stop()

"""README.md's API section against the running app: every named endpoint it lists exists with the documented
parameter names (in order) and number of outputs, every named endpoint the app has is listed, and the example runs
as written (log in, open the sample video, track, follow the job to its end, export COCO) with a real consumer."""

from __future__ import annotations

import json
import re
import signal
from contextlib import contextmanager
from pathlib import Path

import pytest

from sam2_tracking.testing.app_server import AppServer
from sam2_tracking.testing.queue_harness import REPO_ROOT, TEST_MODEL_NAME

pytestmark = pytest.mark.slow

# The example logs in with these: the app below is started with the same accounts.
ANNOTATOR = ("ann", "ann-secret")
ADMIN = ("admin", "admin-secret")
EXAMPLE_URL = "http://127.0.0.1:7860/"


def api_section() -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    start = readme.index("\n## API\n")
    return readme[start:readme.index("\n## ", start + 1)]


def _split(cell: str) -> list[str]:
    """A table cell's comma-separated items; commas inside (), [], {} or `code` do not split."""
    items, depth, code, current = [], 0, False, ""
    for char in cell:
        if char == "`":
            code = not code
        elif not code and char in "([{":
            depth += 1
        elif not code and char in ")]}":
            depth -= 1
        if char == "," and depth == 0 and not code:
            items.append(current.strip())
            current = ""
        else:
            current += char
    return [item for item in [*items, current.strip()] if item]


def documented_endpoints() -> dict[str, tuple[list[str], int]]:
    """{'/name': ([parameter names in order], number of outputs)} from the section's table."""
    endpoints = {}
    for line in api_section().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not re.fullmatch(r"`/\w+`", cells[0]):
            continue
        names = [re.match(r"`(\w+)`", item).group(1) for item in _split(cells[1])]
        endpoints[cells[0].strip("`")] = (names, len(_split(cells[2])))
    return endpoints


def example_code() -> str:
    return re.search(r"```python\n(.*?)```", api_section(), re.S).group(1)


@contextmanager
def time_limit(seconds: int):
    """The example follows its job in a loop until the job ends: stop it here if it never does."""
    def stop(_signum, _frame):
        raise TimeoutError(f"the README example did not finish within {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def logged_in_app(tmp_path_factory, model_server):
    """The app with logins, an embedded CPU consumer and the test model ready: what the example needs."""
    from queues.config import get_store
    from sam2_tracking.models.catalogue import custom_model_entry, download_model
    from sam2_tracking.settings import Settings

    root = tmp_path_factory.mktemp("api-docs")
    data_dir, model_dir = root / "data", root / "models"
    entry = custom_model_entry(TEST_MODEL_NAME, model_server.url + "/config.yaml", model_server.url + "/checkpoint.pt")
    download_model(entry, model_dir)
    store = get_store(Settings(data_dir=data_dir, model_dir=model_dir))
    store.upsert_model(TEST_MODEL_NAME, entry.config, entry.checkpoint_url, is_default=False, status="ready")
    store.set_setting("sam2_enabled", True)
    store.set_setting("tracking_enabled", True)
    server = AppServer(data_dir, model_dir, SAM2T_ADMIN_PASSWORD=ADMIN[1], SAM2T_ANNOTATORS=":".join(ANNOTATOR))
    yield server, store
    server.stop()


def test_the_table_parses():
    endpoints = documented_endpoints()
    for name in ("track", "follow_job", "cancel_job", "export", "import_annotations", "admin_set_sam2"):
        assert f"/{name}" in endpoints
    assert endpoints["/track"] == (["viewer_value", "model", "queue", "frames", "direction", "batch_size",
                                    "notify_percent"], 5)
    assert endpoints["/cancel_job"] == ([], 1)
    assert endpoints["/list_videos"] == ([], 1)


def test_the_documented_endpoints_are_the_apps(logged_in_app):
    from gradio_client import Client

    server, _store = logged_in_app
    client = Client(server.url, auth=ADMIN, verbose=False, analytics_enabled=False, download_files=False)
    named = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    documented = documented_endpoints()
    assert sorted(documented) == sorted(named)  # every endpoint documented, none made up
    for name, (parameters, outputs) in documented.items():
        assert [p["parameter_name"] for p in named[name]["parameters"]] == parameters, name
        assert len(named[name]["returns"]) == outputs, name


def test_the_example_runs_as_written(logged_in_app, tmp_path, monkeypatch):
    server, store = logged_in_app
    code = example_code()
    assert code.count(EXAMPLE_URL) == 1 and 'auth=("{}", "{}")'.format(*ANNOTATOR) in code
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    with time_limit(300):
        exec(compile(code.replace(EXAMPLE_URL, server.url), "README.md (API example)", "exec"), namespace)  # noqa: S102
    assert namespace["job_status"] == "done", (namespace["job_text"], server.log())
    job = store.get_job(namespace["job_id"])
    assert job.owner == ANNOTATOR[0] and job.frames_done == 10 and len(job.spec.track_ids) == 2
    coco = json.loads(Path(namespace["coco_path"]).read_text())
    sample = next(d for d in store.list_datasets() if d.name == "sample_shapes.mp4")
    assert len(coco["images"]) == sample.frame_count
    assert {a["track_id"] for a in coco["annotations"]} <= set(job.spec.track_ids)

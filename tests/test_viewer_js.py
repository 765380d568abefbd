"""The browser viewer's JavaScript: its unit tests (tests/js/*.test.mjs, run by Node's own test runner, so that CI's
pytest runs them), the RLE fixtures they decode (pycocotools' own output, checked here to still be that), and the
js_on_load scripts web/js_modules.py builds from the ES modules."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from web.js_modules import STATIC_DIR, on_load_script

ROOT = Path(__file__).resolve().parents[1]
JS_TESTS = ROOT / "tests" / "js"
RLE_FIXTURES = JS_TESTS / "fixtures" / "rle.json"
ENTRIES = [STATIC_DIR / "viewer" / "main.js", STATIC_DIR / "preview" / "main.js"]


def node() -> str:
    path = shutil.which("node")
    if path is None:  # fail, not skip: CI must not pass without running the viewer's tests
        pytest.fail("node is not installed: the viewer's unit tests need Node 20+ (Debian: apt-get install nodejs; "
                    "tests/run_all.sh installs it)")
    return path


def _masks() -> list[tuple[str, np.ndarray]]:
    """Masks whose RLE covers the decoder's cases: empty, full, one pixel at the end, runs across columns, runs of
    one pixel (short deltas, negative deltas), runs long enough to need several characters."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:48, 0:64]
    rect = np.zeros((30, 40), bool)
    rect[5:21, 9:31] = True
    last = np.zeros((9, 11), bool)
    last[-1, -1] = True
    big = np.zeros((120, 160), bool)
    big[10:110, 20:150] = True
    big[40:60, 60:90] = False  # a hole: short runs between long ones
    return [("empty", np.zeros((4, 6), bool)), ("full", np.ones((7, 5), bool)), ("last pixel", last),
            ("rectangle", rect), ("disc", (yy - 20) ** 2 + (xx - 33) ** 2 < 15 ** 2),
            ("noise", rng.random((17, 23)) < 0.5), ("sparse noise", rng.random((25, 31)) < 0.05),
            ("box with a hole", big)]


def _runs(mask: np.ndarray) -> list[int]:
    """Run lengths of the column-major pixels, off first (COCO's order), counted here without pycocotools."""
    flat = mask.flatten(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], changes, [flat.size]])).tolist()
    return ([0] + runs) if flat[0] else runs


def rle_fixtures() -> list[dict]:
    from pycocotools import mask as coco_mask

    fixtures = []
    for name, mask in _masks():
        rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
        fixtures.append({
            "name": name, "height": mask.shape[0], "width": mask.shape[1],
            "counts": rle["counts"].decode("ascii"), "bbox": [int(v) for v in coco_mask.toBbox(rle)],
            "runs": _runs(mask), "rows": ["".join("1" if v else "0" for v in row) for row in mask],
        })
    return fixtures


def test_rle_fixtures_are_what_pycocotools_writes():
    # The JS tests read the committed file (so `node --test tests/js/` runs alone); it must stay pycocotools' output.
    # To regenerate: python -c "from tests.test_viewer_js import write_fixtures; write_fixtures()"
    assert json.loads(RLE_FIXTURES.read_text()) == rle_fixtures()


def write_fixtures() -> None:
    RLE_FIXTURES.parent.mkdir(parents=True, exist_ok=True)
    RLE_FIXTURES.write_text(json.dumps(rle_fixtures(), indent=1) + "\n")


def test_node_unit_tests_pass():
    result = subprocess.run([node(), "--test", "tests/js/"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"node --test tests/js/ failed:\n{output[-8000:]}"
    passed = re.search(r"^# pass (\d+)$", output, re.M)
    assert passed and int(passed.group(1)) >= 30, f"expected the viewer's unit tests to run:\n{output[-2000:]}"
    assert re.search(r"^# fail 0$", output, re.M), output[-2000:]


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda p: p.parent.name)
def test_the_built_script_runs_as_gradio_runs_js_on_load(entry, tmp_path):
    # Gradio runs js_on_load as Function("element", "trigger", "props", "server", "upload", "watch", code). With
    # an element holding no viewer, every module scope runs (imports bound, exports returned) and mount() returns.
    script = tmp_path / "run.cjs"
    script.write_text(
        "const code = require('fs').readFileSync(process.argv[2], 'utf8');\n"
        "const run = new Function('element', 'trigger', 'props', 'server', 'upload', 'watch', code);\n"
        "let asked = 0;\n"
        "run({ querySelector: () => { asked++; return null; } }, () => {}, { value: {} }, {}, null, () => {});\n"
        "if (asked !== 1) throw new Error('mount() did not look for its root: ' + asked);\n"
        "console.log('ran');\n")
    built = tmp_path / "on_load.js"
    built.write_text(on_load_script(entry))
    result = subprocess.run([node(), str(script), str(built)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "ran", result.stdout + result.stderr


def test_the_builder_refuses_what_it_cannot_build(tmp_path):
    (tmp_path / "a.js").write_text('export function f() { return 1; }\nexport const g = 2;\n')
    (tmp_path / "ok.js").write_text('import { f, g as h } from "./a.js";\nexport function mount() { f(); h; }\n')
    built = on_load_script(tmp_path / "ok.js")
    assert "const { f, g: h } = " in built and "return { f, g };" in built and "export" not in built
    for text, message in [('export default function mount() {}\n', "only `import"),
                          ('import { nope } from "./a.js";\nexport function mount() {}\n', "does not export"),
                          ('import { f } from "./missing.js";\nexport function mount() {}\n', "does not exist"),
                          ('import { mount as m } from "./bad.js";\nexport function mount() {}\n', "cycle")]:
        (tmp_path / "bad.js").write_text(text)
        with pytest.raises(ValueError, match=re.escape(message)):
            on_load_script(tmp_path / "bad.js")

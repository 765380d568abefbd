"""The browser code (web/static/viewer/, web/static/preview/: ES modules) as one script for gr.HTML's js_on_load.

Why one string built here rather than the page importing the modules by URL: js_on_load is a function body Gradio
runs with `element`, `props` and `watch`, and the page has the string before anything else loads. A module URL would
have to be right behind every proxy (a root_path, the Space's domain, a path-stripping reverse proxy: the page URL
alone does not say where the app's root is), pass Gradio's login (another authenticated route), and never mix a
cached old module with a new one after a deploy. Built into the string, the code ships inside the page's own config:
no URL, no extra request, always the server's version. Node's test runner imports the same files as real modules.

The modules keep to a small subset so that this needs no bundler: `import { a, b as c } from "./x.js";` (relative,
named) and `export function|const|let|class name`. Each module becomes a function scope returning its exports;
anything else (default exports, `export { }`, bare imports, cycles) is refused with the file and line.
"""

from __future__ import annotations

import re
from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"

_IMPORT = re.compile(r'^import\s*\{([^}]*)\}\s*from\s*"(\./[\w./-]+\.js)";?[ \t]*$', re.M)
_EXPORT = re.compile(r"^export\s+((?:async\s+)?function\*?|const|let|class)\s+([A-Za-z_$][\w$]*)", re.M)
_LEFT = re.compile(r"^\s*(import|export)\b", re.M)


def on_load_script(entry: Path) -> str:
    """js_on_load for gr.HTML: the modules `entry` imports (transitively) then `entry` itself, each in its own scope,
    and a call of the entry's `mount({element, trigger, props, server, upload, watch})`."""
    order: list[Path] = []
    _visit(entry.resolve(), order, [])
    parts = ['"use strict";  // as the ES modules run under node\'s tests',
             f"// Built by web/js_modules.py from {', '.join(_label(p) for p in order)}."]
    exported: dict[Path, list[str]] = {}
    for path in order:
        body, exports = _transform(path, exported)
        exported[path] = exports
        parts.append(f"const {_scope_name(path)} = (() => {{  // {_label(path)}\n{body}\n"
                     f"return {{ {', '.join(exports)} }};\n}})();")
    parts.append(f"{_scope_name(order[-1])}.mount({{ element, trigger, props, server, upload, watch }});")
    return "\n".join(parts) + "\n"


def _label(path: Path) -> str:
    try:
        return path.relative_to(STATIC_DIR.parent.parent).as_posix()
    except ValueError:
        return path.as_posix()


def _scope_name(path: Path) -> str:
    return "__sv_" + re.sub(r"\W", "_", _label(path).removesuffix(".js"))


def _visit(path: Path, order: list[Path], stack: list[Path]) -> None:
    if path in order:
        return
    if path in stack:
        raise ValueError(f"{_label(path)}: import cycle {' -> '.join(_label(p) for p in [*stack, path])}")
    if not path.is_file():
        raise ValueError(f"{_label(stack[-1]) if stack else 'entry'}: imports {path}, which does not exist")
    for match in _IMPORT.finditer(path.read_text()):
        _visit((path.parent / match.group(2)).resolve(), order, [*stack, path])
    order.append(path)


def _transform(path: Path, exported: dict[Path, list[str]]) -> tuple[str, list[str]]:
    """A module's text with its imports read from the scopes of the modules before it (`exported`: their export
    names) and `export ` dropped; and its own export names (one per `export` statement: `export const a, b` would
    hide b, so the modules declare one per line)."""
    text = path.read_text()

    def bind(match: re.Match) -> str:
        source = (path.parent / match.group(2)).resolve()
        names = []
        for item in match.group(1).split(","):
            parts = item.split()
            if not parts:
                continue
            if len(parts) == 3 and parts[1] == "as":
                names.append(f"{parts[0]}: {parts[2]}")
            elif len(parts) == 1:
                names.append(parts[0])
            else:
                raise ValueError(f"{_label(path)}: cannot read the import of {item.strip()!r}")
            if parts[0] not in exported[source]:
                raise ValueError(f"{_label(path)}: imports {parts[0]}, which {_label(source)} does not export")
        # As many lines as the import had, so that line numbers in errors match the file.
        return f"const {{ {', '.join(names)} }} = {_scope_name(source)};" + "\n" * match.group(0).count("\n")

    text = _IMPORT.sub(bind, text)
    exports = []
    for match in _EXPORT.finditer(text):
        exports.append(match.group(2))
    text = _EXPORT.sub(lambda m: f"{m.group(1)} {m.group(2)}", text)
    left = _LEFT.search(text)
    if left:
        line = text.count("\n", 0, left.start()) + 1
        raise ValueError(f"{_label(path)}:{line}: only `import {{ ... }} from \"./x.js\";` and `export "
                         "function|const|let|class name` can be built into js_on_load")
    return text, exports

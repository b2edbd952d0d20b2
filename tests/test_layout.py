"""The layout's rules, read from the source with ``ast``: no import loops, no arrow from a lower room to a higher
one, and the foreign libraries each in their own room.

Rooms, lowest first (a module imports its own room or lower ones, never a sibling room of its rank):

    0 floor     mtdata.errors, mtdata.limits
    1 _runtime  mtdata._runtime.*            plumbing: imports the floor and itself only
    2 ground    mtdata.<module>              records, geometry, keypoints, synth, input_files, image_header
    3 formats   mtdata.formats.*             never convert, merge, check, export, view or cli
    4 check     mtdata.check.*               the rules; export and view reuse its verifier
    5 commands  mtdata.convert.*, mtdata.merge.*, mtdata.export, mtdata.view.*   none imports another
    6 cli       mtdata.cli.*                 nothing else in mtdata imports it
    7 entry     mtdata.entry, mtdata.__main__

Every import counts, the lazy ones inside functions too. mtdata outside its CLI never imports mttrain,
ultralytics, torch, typer or rich; fiftyone only in mtdata.view; mttrain uses mtdata's public rooms only (not
_runtime, and of the CLI only :mod:`mtdata.cli.shared`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

ROOMS = {  # room -> rank
    "floor": 0, "_runtime": 1, "ground": 2, "formats": 3, "check": 4,
    "convert": 5, "merge": 5, "export": 5, "view": 5, "cli": 6, "entry": 7,
}
FLOOR = {"mtdata", "mtdata.errors", "mtdata.limits"}
ENTRY = {"mtdata.entry", "mtdata.__main__"}
CLI_ONLY = {"mttrain", "ultralytics", "torch", "typer", "rich"}  # imported by mtdata.cli alone
VIEW_ONLY = {"fiftyone"}  # imported by mtdata.view (and the CLI that calls it) alone
MTTRAIN_MAY_USE_FROM_CLI = {"mtdata.cli", "mtdata.cli.shared"}


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every module of ``package`` under ``root``."""
    names = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """Every module ``path`` (module ``name``) imports, resolved to the deepest module that exists in ``known``
    for mtdata's own, the top-level name for foreign ones."""
    found = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".") if is_package else name.split(".")[:-1]
                here = here[: len(here) - node.level + 1]
                base = ".".join(here + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            while len(parts) > 1 and ".".join(parts) not in known:
                parts.pop()
            found.add(".".join(parts) if parts[0] in ("mtdata", "mttrain") else parts[0])
    return found


def import_graph(root: Path, package: str = "mtdata") -> dict[str, set[str]]:
    modules = module_names(root, package)
    known = set(modules) | set(module_names(root, "mttrain" if package == "mtdata" else "mtdata"))
    return {name: imports_of(path, name, known) for name, path in modules.items()}


def room(name: str) -> str:
    if name in FLOOR:
        return "floor"
    if name in ENTRY:
        return "entry"
    parts = name.split(".")
    if parts[1] == "export":
        return "export"
    if len(parts) == 2 and not (REPO / "mtdata" / parts[1]).is_dir():
        return "ground"
    return parts[1]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), and modules importing themselves."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def room_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for a, targets in sorted(graph.items()):
        for b in sorted(targets):
            if b.startswith("mtdata"):
                ra, rb = room(a), room(b)
                if ra != rb and ROOMS[rb] >= ROOMS[ra]:
                    bad.append(f"{a} ({ra}) imports {b} ({rb})")
            elif b in CLI_ONLY and room(a) not in ("cli", "entry"):
                bad.append(f"{a} imports {b} (only mtdata.cli may)")
            elif b in VIEW_ONLY and room(a) not in ("view", "cli"):
                bad.append(f"{a} imports {b} (only mtdata.view may)")
    return bad


def mttrain_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for a, targets in sorted(graph.items()):
        for b in sorted(targets):
            if b.startswith("mtdata._runtime") or (b.startswith("mtdata.cli") and b not in MTTRAIN_MAY_USE_FROM_CLI):
                bad.append(f"{a} imports {b} (mtdata's private plumbing or CLI internals)")
    return bad


def test_mtdata_has_no_import_loops():
    assert cycles(import_graph(REPO)) == []


def test_no_arrow_runs_up_and_foreign_libraries_stay_in_their_rooms():
    assert room_violations(import_graph(REPO)) == []


def test_mttrain_uses_only_public_mtdata():
    assert mttrain_violations(import_graph(REPO, "mttrain")) == []


def test_every_module_has_a_room():
    for name in import_graph(REPO):
        assert room(name) in ROOMS, name


@pytest.mark.parametrize(
    ("files", "rule"),
    [
        # two format modules importing each other (the loop formats/coco.py <-> coco_columns.py once was)
        ({"mtdata/formats/a.py": "from mtdata.formats import b\n", "mtdata/formats/b.py": "import mtdata.formats.a\n"},
         "cycle"),
        # a lazy import inside a function counts too
        ({"mtdata/formats/a.py": "def f():\n    from mtdata.convert.x import y\n", "mtdata/convert/x.py": ""}, "room"),
        ({"mtdata/_runtime/a.py": "from mtdata.records import ImageLabels\n", "mtdata/records.py": ""}, "room"),
        ({"mtdata/merge/a.py": "from mtdata.convert import x\n", "mtdata/convert/x.py": ""}, "room"),
        ({"mtdata/check/a.py": "from mtdata.cli.app import fail\n", "mtdata/cli/app.py": ""}, "room"),
        ({"mtdata/view/a.py": "from ultralytics.utils import ops\n"}, "room"),
        ({"mtdata/geometry.py": "import rich\n"}, "room"),
        ({"mtdata/formats/a.py": "import fiftyone as fo\n"}, "room"),
        ({"mttrain/a.py": "from mtdata.cli.app import user_errors\n", "mtdata/cli/app.py": ""}, "mttrain"),
        ({"mttrain/a.py": "from mtdata._runtime.output import write_file\n"}, "mttrain"),
    ],
)
def test_a_planted_violation_is_found(tmp_path, monkeypatch, files, rule):
    for package in ("mtdata", "mtdata/formats", "mtdata/_runtime", "mtdata/convert", "mtdata/merge", "mtdata/check",
                    "mtdata/view", "mtdata/cli", "mttrain"):
        (tmp_path / package).mkdir(parents=True, exist_ok=True)
        (tmp_path / package / "__init__.py").write_text("")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    monkeypatch.setattr(f"{__name__}.REPO", tmp_path)
    found = {
        "cycle": cycles(import_graph(tmp_path)),
        "room": room_violations(import_graph(tmp_path)),
        "mttrain": mttrain_violations(import_graph(tmp_path, "mttrain")),
    }
    assert found[rule], f"the planted {rule} violation was not found"
    assert not any(found[other] for other in found if other != rule)

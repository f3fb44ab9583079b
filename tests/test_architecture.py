"""The package layout keeps its promises: arrows down the data path, no cycles, small parts.

docs/architecture.md draws the arrows; :data:`MAY_IMPORT` is the same table in code. Every
``import`` of a ``daemon`` module counts, also the lazy ones inside functions and those under
``TYPE_CHECKING``: a cycle hidden in a function is still a cycle.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "daemon"

#: Leaves: anyone may import them; among themselves only as listed in MAY_IMPORT.
LEAVES = {
    "config", "errors", "log", "transcript", "version", "whisper_parts", "systemd", "lock",
    "text",
}  # fmt: skip
#: Each part of whisperd and the parts it may import, besides itself (and the leaves,
#: unless the part is a leaf). Read top-down: cli → commands → service → the data path
#: intake → queue → jobs → media / engines → models → outputs; beside the path, web and
#: notify (what the service shows and tells) over the queue.
MAY_IMPORT: dict[str, set[str]] = {
    "__init__": set(),
    "__main__": {"cli"},
    "cli": {"commands", "service"},
    "commands": {
        "service",
        "web",
        "intake",
        "queue",
        "jobs",
        "media",
        "engines",
        "models",
        "outputs",
    },
    "service": {
        "web",
        "notify",
        "intake",
        "queue",
        "jobs",
        "engines",
        "models",
        "outputs",
        "mediaserver",
    },
    # operating the service: the HTTP listener (metrics, status) and notifications; both read
    # or store through the ledger's interface
    "web": {"queue"},
    "notify": {"queue"},
    "intake": {"media"},  # media.completeness: is the container whole?
    "queue": set(),
    # media: decoding and the speech regions (media.vad) the engine and the guard use
    "jobs": {"queue", "media", "engines", "models", "outputs"},
    "media": set(),
    "engines": {"models"},
    "models": {"outputs"},
    "outputs": set(),
    "mediaserver": set(),  # beside the data path: told by the service, tells a server
    # leaves
    "config": {"errors", "whisper_parts"},
    "errors": set(),
    "log": set(),
    "transcript": set(),
    "version": set(),
    "whisper_parts": set(),
    "systemd": set(),
    "lock": {"errors"},
    "text": set(),
}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (``daemon.queue.store``)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path) -> set[str]:
    """The daemon modules ``name`` imports (``from daemon.x import y`` counts y if a module)."""
    known = modules()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))  # fmt: skip
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def part(module: str) -> str:
    """``daemon.queue.store`` → ``queue``; ``daemon`` → ``__init__``."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else "__init__"


def graph() -> dict[str, set[str]]:
    return {name: imports(name, path) for name, path in modules().items()}


def test_every_part_is_in_the_table() -> None:
    assert {part(m) for m in modules()} == set(MAY_IMPORT)


def test_imports_point_down_the_data_path() -> None:
    wrong = []
    for module, targets in graph().items():
        source = part(module)
        allowed = MAY_IMPORT[source] | {source, "__init__"}
        if source not in LEAVES:
            allowed |= LEAVES
        wrong += [f"{module} imports {t}" for t in targets if part(t) not in allowed]
    assert not wrong, "imports against docs/architecture.md:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles() -> None:
    edges = graph()
    # A package's __init__ re-exports its modules: an edge from the package to its own
    # modules is how Python loads it, not a dependency of the package on its parts.
    for module in edges:
        edges[module] = {t for t in edges[module] if not t.startswith(module + ".")}
    cycles = _cycles(edges)
    assert not cycles, "import cycles:\n" + "\n".join(" → ".join(c) for c in cycles)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
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
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def _reason(doc: str | None) -> bool:
    """A docstring line saying why something is long: ``Long: ...``."""
    return bool(doc) and any(line.strip().startswith("Long:") for line in doc.splitlines())


def test_modules_and_functions_are_small() -> None:
    too_long = []
    for name, path in modules().items():
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES and not _reason(ast.get_docstring(tree)):
            too_long.append(f"{name}: {lines} lines")
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES and not _reason(ast.get_docstring(node)):
                    too_long.append(f"{name}.{node.name}: {length} lines")
    assert not too_long, "too long without a 'Long:' reason in the docstring:\n" + "\n".join(
        too_long
    )


def test_every_package_says_what_it_owns_and_may_import() -> None:
    missing = []
    for name, path in modules().items():
        if path.name == "__init__.py" and name != "daemon":
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
            if "import" not in doc or len(doc.split()) < 25:
                missing.append(name)
    assert not missing, f"packages without an ownership docstring: {missing}"


@pytest.mark.parametrize(
    ("source", "target", "expected"),
    [("daemon.queue.store", "daemon.jobs.worker", False), ("daemon.jobs", "daemon.queue", True)],
)
def test_the_checker_itself(source: str, target: str, expected: bool) -> None:
    """The rule table says what the checks enforce (a check that cannot fail is no check)."""
    allowed = MAY_IMPORT[part(source)] | LEAVES | {part(source)}
    assert (part(target) in allowed) is expected


def test_cycle_finder_finds_a_cycle() -> None:
    edges = defaultdict(set, {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
    assert _cycles(edges) == [["a", "b", "c"]]

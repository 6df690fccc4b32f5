"""The layout holds: read from the source with `ast`, so a change that breaks a layer's rule fails
here, naming the file and line (see docs/development.md)."""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest

from siray_cli.settings import KEYS

PACKAGE = Path(__file__).resolve().parent.parent / "siray_cli"
# what the rest of siray may import from siray_cli.providers: the seam, never a provider's package
SEAM = {
    "base",
    "Connection",
    "open_provider",
    "PROVIDERS",
    "REGISTRY",
    "ProviderSpec",
    "spec_of",
    "DEFAULT_PROVIDER",
    "built_in_models",
    "command_prefix",
}


def modules(*parts: str) -> list[Path]:
    return sorted((PACKAGE.joinpath(*parts)).rglob("*.py"))


def imported(tree: ast.AST) -> Iterator[tuple[str, int]]:
    """Every module a file imports (at any depth: lazy imports count too), with its line."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module, node.lineno
            for alias in node.names:  # `from siray_cli.commands import run`
                yield f"{node.module}.{alias.name}", node.lineno


@functools.cache  # each test reads the whole package; parse each module once (read-only)
def parse(path: Path) -> ast.AST:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def where(path: Path, line: int) -> str:
    return f"{path.relative_to(PACKAGE.parent)}:{line}"


@pytest.mark.parametrize("layer", ["services", "providers", "storage", "signals.py"])
def test_nothing_below_the_commands_prints_nor_imports_typer_or_rich(layer):
    """Below the commands, the process's streams come from an Environment (environment.py),
    never from `sys`: a test builds one where a process is not the point."""
    problems = []
    for path in modules(layer) if not layer.endswith(".py") else [PACKAGE / layer]:
        tree = parse(path)
        for name, line in imported(tree):
            if name.split(".")[0] in {"typer", "rich", "click"}:
                problems.append(f"{where(path, line)} imports {name}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                problems.append(f"{where(path, node.lineno)} calls print()")
            if (
                isinstance(node, ast.Attribute)
                and node.attr in {"stdin", "stdout", "stderr"}
                and getattr(node.value, "id", None) == "sys"
            ):
                problems.append(f"{where(path, node.lineno)} uses sys.{node.attr}")
    assert problems == []


def test_commands_never_import_each_other():
    """(The shared plumbing under commands/, `_options` and `_context`, is no command.)"""
    names = {path.stem for path in modules("commands") if not path.stem.startswith("_")}
    problems = []
    for path in modules("commands"):
        for name, line in imported(parse(path)):
            if name.startswith("siray_cli.commands.") and name.split(".")[2] in names:
                problems.append(f"{where(path, line)} imports {name}")
    assert problems == []


def test_inputs_and_validation_do_not_import_each_other():
    inputs = {name for name, _ in imported(parse(PACKAGE / "services" / "inputs.py"))}
    validation = {name for name, _ in imported(parse(PACKAGE / "services" / "validation.py"))}
    assert not {n for n in inputs if n.startswith("siray_cli.services.validation")}
    assert not {n for n in validation if n.startswith("siray_cli.services.inputs")}


def test_only_providers_know_a_provider():
    """A provider's package (its HTTP calls and JSON parsing) is reached only through the seam:
    nothing outside providers/ imports it, and nothing outside providers/ (nor the emulator,
    which is the other side of the wire) reads a response body as JSON."""
    problems = []
    for path in modules():
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in {"providers", "emulator"}:
            continue
        tree = parse(path)
        for name, line in imported(tree):
            parts = name.split(".")
            if parts[:2] == ["siray_cli", "providers"] and len(parts) > 2 and parts[2] not in SEAM:
                problems.append(f"{where(path, line)} imports {name}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "json":
                problems.append(f"{where(path, node.lineno)} reads a body as JSON")
    assert problems == []


def test_no_setting_default_is_restated():
    """Defaults live in settings_keys.KEYS (a host's in its provider's spec.py, which KEYS
    reads); help texts and messages read them from there (a unit such as 86400 s a day may
    still appear as a number)."""
    urls = {key.default for key in KEYS.values() if key.default and "://" in key.default}
    numbers = {int(key.default) for key in KEYS.values() if key.default and key.default.isdigit()}
    numbers = {n for n in numbers if n >= 100}  # 60 or 0.5 mean many things
    problems = []
    for path in modules():
        a_spec = path.name == "spec.py" and path.parent.parent.name == "providers"
        declares = a_spec or path.name == "settings_keys.py"
        if declares or "emulator" in path.parts:
            continue
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.Constant) and (
                isinstance(node.value, str)
                and (
                    any(url in node.value for url in urls)
                    or any(re.search(rf"\b{n}\b", node.value) for n in numbers)
                )
            ):
                problems.append(f"{where(path, node.lineno)} restates {node.value!r}")
    assert problems == []


def unit_of(path: Path) -> str:
    """A file's place in the package graph: its package under siray_cli, or its own module."""
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")


def package_graph() -> dict[str, dict[str, str]]:
    """unit -> {unit it imports: where the first such import is} (lazy imports count too; the
    emulator, the other side of the wire, has its own test)."""
    graph: dict[str, dict[str, str]] = {}
    for path in modules():
        unit = unit_of(path)
        if unit == "emulator":
            continue
        for name, line in imported(parse(path)):
            parts = name.split(".")
            if parts[0] != "siray_cli" or len(parts) < 2 or parts[1] in {unit, "__init__"}:
                continue
            graph.setdefault(unit, {}).setdefault(parts[1], where(path, line))
    return graph


def test_domain_is_at_the_bottom():
    """The shared nouns import nothing of siray but its errors, so every layer may use them."""
    problems = [
        f"{where_} imports siray_cli.{target}"
        for target, where_ in package_graph().get("domain", {}).items()
        if target != "errors"
    ]
    assert problems == []


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [("storage", {"providers", "services", "commands"}), ("providers", {"storage", "services"})],
)
def test_storage_and_providers_stay_below_the_services(layer, forbidden):
    imports = package_graph().get(layer, {})
    assert {f"{imports[t]} imports siray_cli.{t}" for t in forbidden & set(imports)} == set()


def test_the_package_graph_has_no_circle():
    """Packages import downward only: a circle (storage <-> providers, say) is named with the
    import that closes it."""
    graph = package_graph()
    circles = []
    for start in sorted(graph):
        path, stack = [start], [iter(sorted(graph.get(start, {})))]
        while stack:
            step = next(stack[-1], None)
            if step is None:
                stack.pop()
                path.pop()
            elif step == start:
                hops = [*path, start]
                circles.append(" -> ".join(f"{a} ({graph[a][b]})" for a, b in pairwise(hops)))
            elif step not in path and step > start:  # each circle once, from its least unit
                path.append(step)
                stack.append(iter(sorted(graph.get(step, {}))))
    assert circles == []


def test_no_import_circle_inside_the_emulator():
    """The emulator's modules form layers (HTTP pieces and state below, one module per API above,
    server.py wiring them): a module that imports back from one above it only works while the
    imports happen in a lucky order. Lazy imports count, since they close the circle too."""
    names = {}
    for path in modules("emulator"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def module_of(name: str) -> str | None:
        while name and name not in names:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, dict[str, int]] = {name: {} for name in names}
    for name, path in names.items():
        for target, line in imported(parse(path)):
            found = module_of(target)
            if found is not None and found != name:
                graph[name].setdefault(found, line)

    def circle_from(start: str, trail: list[str]) -> list[str] | None:
        for target in sorted(graph[trail[-1]]):
            if target == start:
                return [*trail, start]
            if target not in trail and target > start:  # a circle is found from its least module
                found = circle_from(start, [*trail, target])
                if found is not None:
                    return found
        return None

    for start in sorted(graph):
        circle = circle_from(start, [start])
        if circle is not None:
            steps = [f"{where(names[a], graph[a][b])} imports {b}" for a, b in pairwise(circle)]
            pytest.fail("import circle: " + "; ".join(steps))


def test_only_the_history_command_touches_the_history():
    """Commands ask the session for task handles and the Ledger; the history itself is read and
    written below them (`siray history` alone lists and prunes it)."""
    problems = []
    for path in modules("commands"):
        if path.name == "history.py":
            continue
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.Attribute) and node.attr == "history":
                problems.append(f"{where(path, node.lineno)} touches .history")
    assert problems == []


def test_only_the_ledger_writes_what_a_task_did():
    """A task's state, files and hand-over are recorded by the Ledger (through a TaskHandle), in
    one place, never by a hand-written call elsewhere."""
    writes = {"update", "deliver", "set_files", "record_submit", "confirm", "settle"}
    problems = []
    for path in modules():
        where_ = path.relative_to(PACKAGE).parts
        if where_ in {("services", "ledger.py"), ("storage", "history.py")}:
            continue
        for node in ast.walk(parse(path)):
            call = node.func if isinstance(node, ast.Call) else None
            if (
                isinstance(call, ast.Attribute)
                and call.attr in writes
                and "history" in ast.unparse(call.value)
            ):
                problems.append(f"{where(path, node.lineno)} calls {ast.unparse(call)}")


PROVIDER_NAMES = {"siray", "higgsfield"}


def names_a_provider(node: ast.expr) -> bool:
    """The literal name of a provider, or a tuple, list or set of literals holding one."""
    if isinstance(node, ast.Constant):
        return node.value in PROVIDER_NAMES
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return any(names_a_provider(element) for element in node.elts)
    return False


def test_no_provider_name_is_compared_outside_providers():
    """What a provider is (its credential, host, catalogue, hints) is declared by its package in
    the registry: a branch on a provider's name anywhere else is knowledge that leaked, and the
    place a third provider would be forgotten. Comparisons, `in`, match/case and lookups by a
    literal name (`table["higgsfield"]`, `.get("higgsfield")`) all count."""
    problems = []
    for path in modules():
        if path.relative_to(PACKAGE).parts[0] in {"providers", "emulator"}:
            continue
        for node in ast.walk(parse(path)):
            found: ast.expr | None = None
            if isinstance(node, ast.Compare):
                ops = (ast.Eq, ast.NotEq, ast.In, ast.NotIn)
                sides = [node.left, *node.comparators]
                if any(isinstance(op, ops) for op in node.ops):
                    found = next((side for side in sides if names_a_provider(side)), None)
            elif isinstance(node, ast.MatchValue) and names_a_provider(node.value):
                found = node.value
            elif isinstance(node, ast.Subscript) and names_a_provider(node.slice):
                found = node.slice
            elif (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", None) == "get"
                and node.args
                and names_a_provider(node.args[0])
            ):
                found = node.args[0]
            if found is not None:
                problems.append(f"{where(path, node.lineno)} compares {ast.unparse(found)}")
    assert problems == []

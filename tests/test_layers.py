"""bitsim's layers import only downwards: formats -> kernels -> reference -> nn -> methods, deploy, golden -> jobs -> cli."""

import ast
from pathlib import Path

import pytest

import bitsim

ROOT = Path(bitsim.__file__).parent
RANK = {"__version__": 0, "errors": 0, "schema": 0, "io": 0, "outputs": 0, "datasets": 0, "formats": 1, "kernels": 2,
        "reference": 3, "nn": 4, "methods": 5, "deploy": 5, "golden": 5, "interop": 5, "jobs": 6, "verify": 5, "sweep": 6, "explain": 6, "tour": 6, "cli": 7,
        "__init__": 7}


def part(module):
    """The layer of a module path like ``bitsim.kernels.u8``."""
    return module.split(".")[1] if module.count(".") else "__init__"


def imports(path, root=ROOT):
    """Every bitsim module that ``path`` imports, at any depth of the file (function-level imports too)."""
    return [module for module, _ in resolved_imports(path, root.parent) if module.startswith("bitsim")]


MODULES = sorted(ROOT.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down(path):
    own = RANK[part("bitsim." + ".".join(path.relative_to(ROOT).with_suffix("").parts))]
    for target in imports(path):
        layer = part(target)
        if target == "bitsim":
            continue
        assert layer in RANK, f"{path.name} imports {target}, which belongs to no layer; add it to RANK"
        assert RANK[layer] <= own, f"{path.relative_to(ROOT)} (layer {own}) imports {target} (layer {RANK[layer]})"


def test_the_check_sees_a_violation(tmp_path):
    fake = tmp_path / "bitsim" / "kernels" / "u8.py"
    fake.parent.mkdir(parents=True)
    fake.write_text((ROOT / "kernels" / "u8.py").read_text()
                    + "\ndef late():\n    from ..methods import bnn\n    from bitsim.deploy import sparse\n")
    found = set(imports(fake, tmp_path / "bitsim"))
    assert {"bitsim.methods", "bitsim.deploy"} <= found and "bitsim.formats.fixed" in found


# ---------------------------------------------------------------------------------------------------
# no private names between modules, no import cycles (benchmarks included), methods and deploy are peers

REPO = ROOT.parent
SOURCES = MODULES + sorted((REPO / "benchmarks").glob("*.py"))


def module_name(path, repo=REPO):
    """``bitsim.kernels.u8`` for a file of the package, ``benchmarks.kernels`` for a benchmark script."""
    parts = path.relative_to(repo).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolved_imports(path, repo=REPO):
    """``(module, names)`` for each import of ``path``: the imported module's dotted name and the names taken.

    A benchmark script's ``import harness`` / ``from kernels import x`` names a sibling script.
    """
    here = module_name(path, repo)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    siblings = {p.stem for p in path.parent.glob("*.py")} if package == "benchmarks" else set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
                if name.split(".")[0] in siblings:
                    name = f"benchmarks.{name}"
            yield name, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                name = f"benchmarks.{a.name}" if a.name.split(".")[0] in siblings else a.name
                yield name, []


def is_private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_imports(path, repo=REPO):
    """``[(module, private names)]`` that ``path`` takes from other modules of bitsim or the benchmarks."""
    found = []
    for module, names in resolved_imports(path, repo):
        if module.startswith(("bitsim", "benchmarks")) and module != module_name(path, repo):
            private = [part for part in module.split(".") if is_private(part)] + [n for n in names if is_private(n)]
            found += [(module, private)] if private else []
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_private_names_between_modules(path):
    found = private_imports(path)
    assert not found, (f"{path.relative_to(REPO)} imports private names {found}: make them public, in a module of "
                       "their own if several modules need them")


def test_the_private_check_sees_a_violation(tmp_path):
    fake = tmp_path / "bitsim" / "kernels" / "u8.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("from ._launch import launch\nfrom .fixed import _rshift, ok\nfrom .. import __version__\n")
    assert private_imports(fake, tmp_path) == [("bitsim.kernels._launch", ["_launch"]),
                                               ("bitsim.kernels.fixed", ["_rshift"])]


def import_graph():
    """``{module: {modules it imports}}`` over bitsim and benchmarks, resolving ``from package import module``."""
    known = {module_name(p) for p in SOURCES}
    graph = {}
    for path in SOURCES:
        edges = set()
        for module, names in resolved_imports(path):
            targets = [f"{module}.{n}" for n in names if f"{module}.{n}" in known] or [module]
            edges |= {t for t in targets if t in known and t != module_name(path)}
        graph[module_name(path)] = edges
    return graph


def find_cycle(graph):
    """One import cycle as a list of modules, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_check_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_methods_and_deploy_are_peers():
    graph = import_graph()
    for source, targets in graph.items():
        for a, b in (("bitsim.methods", "bitsim.deploy"), ("bitsim.deploy", "bitsim.methods")):
            if source.startswith(a):
                assert not [t for t in targets if t.startswith(b)], f"{source} imports {b}: methods and deploy are peers"

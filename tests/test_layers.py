"""bitsim's layers import only downwards: formats -> kernels -> reference -> nn -> methods -> deploy, golden -> cli."""

import ast
from pathlib import Path

import pytest

import bitsim

ROOT = Path(bitsim.__file__).parent
RANK = {"__version__": 0, "errors": 0, "schema": 0, "io": 0, "outputs": 0, "datasets": 0, "formats": 1, "kernels": 2, "reference": 3, "nn": 4, "methods": 5, "deploy": 6,
        "golden": 6, "explain": 7, "tour": 7, "cli": 7, "__init__": 7}


def part(module):
    """The layer of a module path like ``bitsim.kernels.u8``."""
    return module.split(".")[1] if module.count(".") else "__init__"


def imports(path, root=ROOT):
    """Every bitsim module that ``path`` imports, at any depth of the file (function-level imports too)."""
    here = "bitsim." + ".".join(path.relative_to(root).with_suffix("").parts)
    package = here.rsplit(".", 1)[0] if path.name != "__init__.py" else here.removesuffix(".__init__")
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            targets = [name] if node.module else [f"{name}.{a.name}" for a in node.names]
            yield from (t for t in targets if t.startswith("bitsim"))
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("bitsim"))


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

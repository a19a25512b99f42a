"""The package layout shows the architecture: README's layout table matches the tree,
pyproject lists every package, each subpackage exports a small public API, modules stay
small, and the wheel carries the shipped models."""

import ast
import importlib
import re
import sys
import zipfile
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent
#: Longest module, lines (STYLE.md: aim for < 400).
MAX_MODULE_LINES = 400
#: Largest public API of a subpackage (STYLE.md: ~10 names in __all__).
MAX_PUBLIC_NAMES = 12


def _packages_in_tree() -> set[str]:
    found = set()
    for top in ("gicnet_runtime", "gicnet_train"):
        for init in (ROOT / top).rglob("__init__.py"):
            found.add(".".join(init.parent.relative_to(ROOT).parts))
    return found


def test_pyproject_lists_every_package_and_maps_the_shipped_models():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    assert listed - {"gicnet_runtime.shipped"} == _packages_in_tree()
    assert config["package-dir"]["gicnet_runtime.shipped"] == "exported"
    assert "py-modules" not in config  # no top-level `cli` module in the wheel


def test_readme_layout_table_matches_the_tree():
    text = (ROOT / "README.md").read_text()
    table = text[text.index("## Layout"):]
    rows = re.findall(r"^\| `([^`]+)` \|", table, flags=re.M)
    for path in rows:
        assert (ROOT / path).exists(), f"README layout names {path}, which does not exist"
    subpackages = {p for p in _packages_in_tree() if p.startswith("gicnet_runtime.")}
    for package in subpackages:
        assert package.replace(".", "/") + "/" in rows, f"{package} missing from the table"


@pytest.mark.parametrize("package", sorted(p for p in _packages_in_tree()
                                           if p.startswith("gicnet_runtime.")))
def test_subpackage_exports_a_small_public_api(package):
    module = importlib.import_module(package)
    names = getattr(module, "__all__", [])
    assert 1 <= len(names) <= MAX_PUBLIC_NAMES, (package, names)
    if package == "gicnet_runtime.integrations":
        pytest.importorskip("ase")
    for name in names:
        assert getattr(module, name) is not None


def test_modules_stay_small():
    long = []
    for top in ("gicnet_runtime", "gicnet_train"):
        for path in (ROOT / top).rglob("*.py"):
            n = len(path.read_text().splitlines())
            if n >= MAX_MODULE_LINES:
                long.append(f"{path.relative_to(ROOT)}: {n}")
    assert long == []


def test_no_module_of_a_layer_imports_a_later_layer():
    """core < io < unroll < reference < analysis < integrations < cluster < cli (STYLE.md: a layer
    never imports the one above it); lazy imports inside functions count too, except the
    documented conveniences (Model.propagate, Model given ase.Atoms, Trajectory.to_atoms
    and .write) that call upward only when used."""
    order = ["core", "io", "unroll", "reference", "analysis", "integrations", "cluster", "cli"]
    allowed = {("core/model.py", "unroll"), ("core/model.py", "integrations"),
               ("core/trajectory.py", "io"), ("core/trajectory.py", "integrations")}
    offenders = []
    for path in (ROOT / "gicnet_runtime").rglob("*.py"):
        rel = path.relative_to(ROOT / "gicnet_runtime")
        if len(rel.parts) < 2:
            continue
        layer = order.index(rel.parts[0])
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "gicnet_runtime."):
                target = node.module.split(".")[1]
                if target in order and order.index(target) > layer \
                        and (rel.as_posix(), target) not in allowed:
                    offenders.append(f"{rel}: {node.module}")
    assert offenders == []


def test_the_wheel_carries_the_shipped_models(tmp_path):
    """Built without build isolation from this tree (setuptools is installed here)."""
    import subprocess

    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                             "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    wheel = next(tmp_path.glob("gicnet-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"gicnet_runtime/shipped/{p.relative_to(ROOT / 'exported').as_posix()}"
               for p in (ROOT / "exported").rglob("*") if p.is_file()
               and p.suffix in (".onnx", ".extxyz", ".json")}
    assert shipped and shipped <= names
    assert "cli.py" not in names and not any(n.startswith("exported/") for n in names)
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "gicnet = gicnet_runtime.cli:main" in entry_points
    assert "train = gicnet_train.cli:train" in entry_points

"""The runtime never imports torch (nor onnx), not even through the CLI; nor Ray, which
only ``--ray`` (gicnet_runtime.cluster, inside its functions) loads.

Each check runs in a fresh interpreter, since the test process itself imports torch.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.io.formats import read_trajectory, write_trajectory
from tests.onnx_fixtures import (
    ETHANOL_MASSES_AMU,
    ETHANOL_POSITIONS_A,
    ETHANOL_Z,
    thermal_velocities,
    write_model,
)

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = ("torch", "onnx", "gicnet_train", "ray")


def _run_clean(code: str) -> None:
    check = f"\nimport sys\nbad = [m for m in {FORBIDDEN!r} if m in sys.modules]\n" \
            "assert not bad, f'imported {bad}'\n"
    result = subprocess.run([sys.executable, "-c", code + check], check=False, cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("notorch")
    init = folder / "init.extxyz"
    write_trajectory(Trajectory(time_fs=[0.0], positions=ETHANOL_POSITIONS_A[None],
                                velocities=thermal_velocities(0, count=1),
                                atomic_numbers=ETHANOL_Z, masses=ETHANOL_MASSES_AMU), init)
    return {"init": init, "model": write_model(folder / "m.onnx"), "out": folder / "out.h5"}


def test_import_and_help():
    _run_clean(
        "import gicnet_runtime, gicnet_runtime.core.model, gicnet_runtime.unroll.propagate\n"
        "from click.testing import CliRunner\nimport cli\n"
        "for cmd in ('predict', 'propagate', 'info'):\n"
        "    r = CliRunner().invoke(cli.main, [cmd, '--help'])\n"
        "    assert r.exit_code == 0, r.output\n")


def test_real_propagate_and_predict(files):
    m, init, out = (str(files[k]) for k in ("model", "init", "out"))
    _run_clean(
        "from click.testing import CliRunner\nimport cli\n"
        f"r = CliRunner().invoke(cli.main, ['propagate', '--model', {m!r}, '--init', {init!r},"
        f" '--duration-fs', '20', '--dt-fs', '1', '--out', {out!r}])\n"
        "assert r.exit_code == 0, r.output + r.stderr\n"
        f"r = CliRunner().invoke(cli.main, ['predict', '--model', {m!r}, '--init', {init!r},"
        f" '--times', '0:10:1', '--out', {out!r}])\n"
        "assert r.exit_code == 0, r.output + r.stderr\n"
        f"r = CliRunner().invoke(cli.main, ['info', '--model', {m!r}])\n"
        "assert r.exit_code == 0, r.output + r.stderr\n")
    assert read_trajectory(files["out"]).n_frames == 11  # the predict frames


def test_no_runtime_module_imports_the_training_layer():
    """A source scan (lazy imports inside functions included): the runtime layer never
    imports gicnet_train, torch or torchani, only its cluster layer imports Ray (inside
    functions), and every runtime module imports in a clean interpreter without torch,
    onnx, gicnet_train or Ray."""
    import ast

    modules = sorted((ROOT / "gicnet_runtime").rglob("*.py"))
    offenders = []
    for path in modules:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names
                          if n.split(".")[0] in ("gicnet_train", "torch", "torchani")]
            if path.parent.name != "cluster":  # Ray: only the cluster layer, see below
                offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names
                              if n.split(".")[0] == "ray"]
        if path.parent.name == "cluster":  # and there only inside its functions
            top = [a.name for n in ast.parse(path.read_text()).body
                   if isinstance(n, ast.Import) for a in n.names]
            offenders += [f"{path.relative_to(ROOT)}: {n} at module level" for n in top
                          if n.split(".")[0] == "ray"]
    assert offenders == []
    assert len(modules) > 40  # the scan sees the subpackages
    dotted = [".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
              for p in modules]
    _run_clean("".join(f"import {name}\n" for name in dotted
                       if name != "gicnet_runtime.integrations.ase"))  # needs ASE, not torch


def test_runtime_commands_do_not_load_the_training_commands(files):
    """The training commands join `gicnet` as entry points, loaded only when named."""
    m, init, out = (str(files[k]) for k in ("model", "init", "out"))
    _run_clean(
        "from click.testing import CliRunner\nfrom gicnet_runtime.cli import main\n"
        f"r = CliRunner().invoke(main, ['predict', '--model', {m!r}, '--init', {init!r},"
        f" '--times', '0:10:1', '--out', {out!r}])\n"
        "assert r.exit_code == 0, r.output + r.stderr\n")

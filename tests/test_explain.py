"""Integrated gradients through the runtime: completeness, exact zeros for inputs that
cannot matter, outputs against a closed form (free flight) and the shipped model."""

import numpy as np
import pytest
from click.testing import CliRunner

import cli
from gicnet_runtime.analysis.explain import input_labels, integrated_gradients
from gicnet_runtime.core import internal
from gicnet_runtime.core.icdef import ICDefinition
from gicnet_runtime.core.model import DEFAULT_MODEL_DIR, load_model
from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.io.formats import write_trajectory
from gicnet_runtime.io.initial import read_initial_conditions
from tests.onnx_fixtures import (
    ETHANOL_IC_ROWS,
    ETHANOL_MASSES_AMU,
    ETHANOL_POSITIONS_A,
    ETHANOL_Z,
    thermal_velocities,
    write_model,
)

VELOCITIES = thermal_velocities(5, scale_A_per_fs=0.02)


@pytest.fixture(scope="module")
def free_model(tmp_path_factory):
    return load_model(write_model(tmp_path_factory.mktemp("explain") / "free.onnx"),
                      device="cpu")


def _ancestors(atom: int) -> set[int]:
    """IC rows whose coordinates place ``atom`` (its own row and its references' rows)."""
    rows = {r[0]: k for k, r in enumerate(ETHANOL_IC_ROWS)}
    out, todo = set(), [atom]
    while todo:
        k = rows[todo.pop()]
        if k not in out:
            out.add(k)
            todo += [a for a in ETHANOL_IC_ROWS[k][1:] if a >= 0]
    return out


def test_free_flight_bond_attribution_is_complete_and_exact(free_model):
    # Free flight: the bond at t is |d0 + (v_i - v_j) t|; at rest it stays |d0|.
    i, j, t = 0, 3, 8.0
    coordinate = internal.Coordinate.parse(f"bond {i + 1} {j + 1}", 9)
    result = integrated_gradients(free_model, ETHANOL_POSITIONS_A, VELOCITIES, coordinate, t)
    d0 = ETHANOL_POSITIONS_A[i] - ETHANOL_POSITIONS_A[j]
    expected = np.linalg.norm(d0 + (VELOCITIES[i] - VELOCITIES[j]) * t)
    assert result.output == pytest.approx(expected, abs=2e-6)
    assert result.baseline_output == pytest.approx(np.linalg.norm(d0), abs=2e-6)
    change = expected - np.linalg.norm(d0)
    assert abs(change) > 0.01
    assert abs(result.completeness_error) < 1e-3 * abs(change)
    # Positions equal the baseline's: only rates carry attribution.
    n = len(ETHANOL_Z)
    assert np.all(result.values[:3 * n] == 0.0)
    # Rows that place neither atom (nor their references) cannot change the bond.
    relevant = _ancestors(i) | _ancestors(j)
    rates = result.values[3 * n:].reshape(n, 3)
    for k in range(n):
        if k not in relevant:
            assert np.all(rates[k] == 0.0), k
    assert np.any(np.abs(rates[sorted(relevant)]) > 1e-4)


def test_completeness_improves_with_steps_and_holds_for_a_dihedral(free_model):
    baseline_positions = ETHANOL_POSITIONS_A + 0.05 * np.sin(np.arange(27)).reshape(9, 3)
    coordinate = internal.Coordinate.parse("dihedral 4 1 2 3", 9)
    errors = []
    for steps in (2, 32):
        result = integrated_gradients(free_model, ETHANOL_POSITIONS_A, VELOCITIES, coordinate,
                                      10.0, baseline_positions, 0.5 * VELOCITIES, steps=steps)
        errors.append(abs(result.completeness_error))
    change = result.output - result.baseline_output
    assert abs(change) > 0.02
    # midpoint rule: error ~ 1/steps^2, i.e. 256 times smaller at 32 steps than at 2
    assert errors[1] < 1e-4 * abs(change) and errors[1] < errors[0] / 50
    expected = internal.dihedrals(ETHANOL_POSITIONS_A + 10.0 * VELOCITIES, 3, 0, 1, 2)
    assert result.output == pytest.approx(expected, abs=1e-5)


@pytest.mark.skipif(not (DEFAULT_MODEL_DIR / "initial.extxyz").is_file(),
                    reason="no shipped model")
def test_completeness_on_the_shipped_model():
    model = load_model(None, device="cpu")
    init = read_initial_conditions(DEFAULT_MODEL_DIR / "initial.extxyz")
    coordinate = internal.Coordinate.parse("dihedral 4 3 2 1", model.description.n_atoms)
    result = integrated_gradients(model, init.positions[0], init.velocities[0], coordinate, 10.0,
                                  init.positions[1], init.velocities[1])
    change = result.output - result.baseline_output
    assert abs(result.completeness_error) < 1e-3 * abs(change) + 1e-5
    # F(input) is the members' mean dihedral of the lab-frame prediction at t.
    direct = list(coordinate.value(model.run(init.positions[:1], init.velocities[:1],
                                             np.array([[10.0]]))["positions_t"][:, 0, 0]
                                   .astype(float)))
    mean = direct[0] + np.mean(internal.wrap_angle(np.array(direct) - direct[0]))
    assert internal.wrap_angle(result.output - mean) == pytest.approx(0.0, abs=1e-4)


def test_labels_name_rows_and_rates():
    labels, units = input_labels(ICDefinition(ETHANOL_IC_ROWS))
    assert labels[:3] == ("r(1,D0)", "angle(1,D0,D1)", "dihedral(1,D0,D1,D2)")
    assert labels[27 + 9] == "d/dt r(4,1)" and units[27 + 9] == "Å/fs" and units[2] == "rad"


def test_cli_explain_prints_table_and_chart(free_model, tmp_path):
    init = tmp_path / "init.extxyz"
    write_trajectory(Trajectory(time_fs=[0.0], positions=ETHANOL_POSITIONS_A[None],
                                velocities=VELOCITIES[None], atomic_numbers=ETHANOL_Z,
                                masses=ETHANOL_MASSES_AMU), init)
    out = tmp_path / "ig.png"
    args = ["explain", "--model", str(free_model.paths[0]), "--init", str(init),
            "--time-fs", "5", "--steps", "8", "--out", str(out)]
    result = CliRunner().invoke(cli.main, args + ["--coordinate", "bond 1 4"])
    assert result.exit_code == 0, result.output
    assert "bond 1 4 at t = 5 fs" in result.output and "d/dt r(4,1)" in result.output
    assert out.stat().st_size > 1000
    bad = CliRunner().invoke(cli.main, args + ["--coordinate", "torsion 1 2 3 4"])
    assert bad.exit_code == 1 and "must start with one of" in bad.output

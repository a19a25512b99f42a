"""Integrated gradients through the runtime: completeness, exact zeros for inputs that
cannot matter, outputs against a closed form (free flight) and the shipped model."""

import numpy as np
import pytest
from click.testing import CliRunner

import cli
from gicnet_runtime.analysis.explain import input_kinds, input_labels, integrated_gradients
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
    assert labels[:3] == ("bond 1-D0", "angle 1-D0-D1", "dihedral 1-D0-D1-D2")
    assert labels[27 + 9] == "d/dt bond 4-1" and units[27 + 9] == "Å/fs" and units[2] == "rad"


def test_labels_read_as_a_chemist_writes_them():
    """Element and 1-based index of every atom, as in the IC rows of the model."""
    labels, _ = input_labels(ICDefinition(ETHANOL_IC_ROWS), ETHANOL_Z)
    row = ETHANOL_IC_ROWS[3]
    names = [f"{'HCNO'[[1, 6, 7, 8].index(ETHANOL_Z[i])]}{i + 1}" for i in row]
    assert labels[9:12] == (f"bond {names[0]}-{names[1]}",
                            f"angle {names[0]}-{names[1]}-{names[2]}",
                            f"dihedral {'-'.join(names)}")
    assert labels[27 + 11] == f"d/dt dihedral {'-'.join(names)}"
    kinds = input_kinds(9)
    assert list(kinds[9:12]) == ["bond", "angle", "dihedral"]
    assert list(kinds[27 + 9:27 + 12]) == ["bond rate", "angle rate", "dihedral rate"]


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
    assert "bond 1 4 at t = 5 fs" in result.output and "d/dt bond H4-C1" in result.output
    assert out.stat().st_size > 1000
    bad = CliRunner().invoke(cli.main, args + ["--coordinate", "torsion 1 2 3 4"])
    assert bad.exit_code == 1 and "must start with one of" in bad.output


@pytest.fixture(scope="module")
def shipped_frames():
    """The shipped ensemble (one file, 2 members), its member files, and 3 starts."""
    ensemble = load_model(DEFAULT_MODEL_DIR, device="cpu")
    members = [load_model(p, device="cpu")
               for p in sorted((DEFAULT_MODEL_DIR / "members").glob("*.onnx"))]
    init = read_initial_conditions(DEFAULT_MODEL_DIR / "initial.extxyz")
    return ensemble, members, init


def test_member_attributions_are_each_members_own(shipped_frames):
    """An ensemble's per-member attributions equal those of each member file alone, and
    their mean is the ensemble's attribution (integrated gradients is linear in F)."""
    ensemble, members, init = shipped_frames
    coordinate = internal.Coordinate.parse("angle 3 2 1", 9)
    result = integrated_gradients(ensemble, init.positions[1], init.velocities[1],
                                  coordinate, 10.0, steps=8)
    assert result.member_values.shape == (2, 54)
    scale = np.abs(result.values).max()
    for k, member in enumerate(members):
        alone = integrated_gradients(member, init.positions[1], init.velocities[1],
                                     coordinate, 10.0, steps=8)
        np.testing.assert_allclose(result.member_values[k], alone.values, atol=1e-3 * scale)
    np.testing.assert_allclose(result.member_values.mean(axis=0), result.values,
                               atol=1e-6 * scale)
    assert np.abs(result.member_values[0] - result.member_values[1]).max() > 1e-3 * scale


def test_summary_over_frames_against_the_frames_themselves(shipped_frames):
    from gicnet_runtime.analysis.attributions import format_summary, summarize

    ensemble, _, init = shipped_frames
    coordinate = internal.Coordinate.parse("dihedral 4 1 2 3", 9)
    frames = [integrated_gradients(ensemble, init.positions[k], init.velocities[k],
                                   coordinate, 10.0, steps=8) for k in (0, 3, 6)]
    summary = summarize(frames)
    values = np.stack([f.values for f in frames])
    np.testing.assert_allclose(summary.mean, values.mean(axis=0))
    np.testing.assert_allclose(summary.frame_spread, values.std(axis=0))
    members = np.stack([f.member_values for f in frames])
    np.testing.assert_allclose(summary.member_spread, members.std(axis=1).mean(axis=0))
    kinds = {row["kind"]: row for row in summary.by_kind()}
    rates = values[:, 27:].reshape(3, 9, 3)  # rows x (bond, angle, dihedral) rates
    assert kinds["angle rate"]["mean"] == pytest.approx(rates[:, :, 1].sum(axis=1).mean())
    assert sum(row["share"] for row in kinds.values()) == pytest.approx(1.0)
    for k, frame in enumerate(frames):  # completeness, frame by frame
        assert summary.completeness[k] == pytest.approx(frame.completeness_error)
        assert summary.changes[k] == pytest.approx(frame.output - frame.baseline_output)
        assert frame.relative_completeness_error == pytest.approx(
            abs(frame.completeness_error) / abs(frame.output - frame.baseline_output))
        assert summary.relative_completeness[k] == pytest.approx(
            frame.relative_completeness_error)
    assert summary.relative_completeness.max() < 0.05
    top = summary.table(3)
    assert abs(top[0]["mean"]) >= abs(top[1]["mean"]) >= abs(top[2]["mean"])
    assert top[0]["input"].split()[-1][0] in "CHO"  # element-labelled atoms
    text = format_summary(summary, 5)
    assert "over 3 frames" in text[0] and any(line.startswith("dihedral rate") for line in text)


def test_summary_refuses_mixed_coordinates(shipped_frames):
    from gicnet_runtime.analysis.attributions import summarize
    from gicnet_runtime.errors import InputError

    ensemble, _, init = shipped_frames
    a = integrated_gradients(ensemble, init.positions[0], init.velocities[0],
                             internal.Coordinate.parse("bond 1 2", 9), 5.0, steps=2)
    b = integrated_gradients(ensemble, init.positions[0], init.velocities[0],
                             internal.Coordinate.parse("bond 1 3", 9), 5.0, steps=2)
    with pytest.raises(InputError, match="cannot be summarized"):
        summarize([a, b])
    with pytest.raises(InputError):
        summarize([])


def test_cli_explain_many_frames_writes_the_aggregate(tmp_path):
    import json

    out = tmp_path / "ig.json"
    init = DEFAULT_MODEL_DIR / "initial.extxyz"
    result = CliRunner().invoke(cli.main, [
        "explain", "--init", str(init), "--frames", "0:4:2", "--coordinate", "bond 2 3",
        "--time-fs", "10", "--steps", "4", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "over 3 frames" in result.output and "bond rate" in result.output
    saved = json.loads(out.read_text())
    assert saved["frames_of_init"] == [0, 2, 4] and len(saved["values"]) == 3
    assert {row["kind"] for row in saved["by_kind"]} >= {"bond", "dihedral rate"}
    both = CliRunner().invoke(cli.main, [
        "explain", "--init", str(init), "--frame", "1", "--frames", "0:2",
        "--coordinate", "bond 2 3", "--time-fs", "10"])
    assert both.exit_code == 1 and "not both" in both.output

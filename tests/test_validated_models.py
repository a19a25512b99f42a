"""Validated models: a model file's metadata is checked against its schema on load, and
its graph is run once (the load check, gicnet_runtime/core/probe.py) against that
metadata; each disagreement is refused with a one-line ModelError naming what disagrees
(docs/robustness.md, "Validated models")."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import cli
from gicnet_runtime.core import probe
from gicnet_runtime.core.contract import METADATA_PREFIX
from gicnet_runtime.core.description import MAX_ATOMS, MAX_VALUE_CHARS, ModelDescription
from gicnet_runtime.core.model import load_model
from gicnet_runtime.core.session import Session
from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.errors import ModelError
from gicnet_runtime.io.formats import write_trajectory
from tests.onnx_fixtures import (
    ETHANOL_IC_ROWS,
    ETHANOL_MASSES_AMU,
    ETHANOL_POSITIONS_A,
    ETHANOL_Z,
    _Graph,
    _save,
    description,
    thermal_velocities,
    with_metadata,
    write_model,
)
from tests.test_robust_propagate import _poisoned_model

REPO = Path(__file__).resolve().parent.parent
SHIPPED = [REPO / "exported/ethanol/ensemble.onnx",
           *sorted((REPO / "exported/ethanol/members").glob("*.onnx"))]
#: Bound on one load check of the shipped ensemble, s: it runs on every load (measured:
#: ~1-5 ms on one CPU core); generous, because the CPU is shared.
MAX_PROBE_S = 0.1


def _props(**changes) -> dict[str, str]:
    """The fixture's metadata with fields replaced by JSON values (or _Raw text)."""
    props = description().to_metadata()
    for key, value in changes.items():
        props[METADATA_PREFIX + key] = value if isinstance(value, _Raw) else json.dumps(value)
    return props


class _Raw(str):
    """A metadata value written as is (not JSON-encoded)."""


def _rows(*changed: tuple[int, tuple[int, int, int, int]]) -> list[list[int]]:
    rows = [list(r) for r in ETHANOL_IC_ROWS]
    for k, row in changed:
        rows[k] = list(row)
    return rows


SCHEMA_CASES = {
    "atomic_numbers_string": ({"atomic_numbers": "668111111"},
                              "atomic_numbers must be a list, got '668111111'"),
    "atomic_number_zero": ({"atomic_numbers": [6, 0, 8, 1, 1, 1, 1, 1, 1]},
                           "atomic_numbers[1] is 0, not a known element (an integer 1..118)"),
    "atomic_number_119": ({"atomic_numbers": [6, 6, 119, 1, 1, 1, 1, 1, 1]},
                          "atomic_numbers[2] is 119, not a known element"),
    "atomic_number_float": ({"atomic_numbers": [6.0, 6, 8, 1, 1, 1, 1, 1, 1]},
                            "atomic_numbers[0] is 6.0, not a known element"),
    "atomic_number_bool": ({"atomic_numbers": [True, 6, 8, 1, 1, 1, 1, 1, 1]},
                           "atomic_numbers[0] is True, not a known element"),
    "too_many_atoms": ({"atomic_numbers": [1] * (MAX_ATOMS + 1)},
                       f"atomic_numbers must have 1..{MAX_ATOMS} entries, got {MAX_ATOMS + 1}"),
    "no_atoms": ({"atomic_numbers": []}, "atomic_numbers must have 1..1000 entries, got 0"),
    "lengths_disagree": ({"masses_amu": [12.0] * 8},
                         "atomic_numbers, masses_amu and ic_rows disagree in length (9, 8, 9)"),
    "mass_negative": ({"masses_amu": [12.011, -12.0] + [1.0] * 7},
                      "masses_amu[1] must be positive, got -12.0"),
    "mass_zero": ({"masses_amu": [0.0] + [1.0] * 8}, "masses_amu[0] must be positive, got 0.0"),
    "mass_nan": ({"masses_amu": _Raw("[NaN" + ", 1.0" * 8 + "]")},
                 "masses_amu[0] must be a finite number, got nan"),
    "mass_string": ({"masses_amu": ["12"] + [1.0] * 8}, "masses_amu[0] must be a number"),
    "tc_inf": ({"tc_fs": _Raw("Infinity")}, "tc_fs must be a finite number, got inf"),
    "tc_nan": ({"tc_fs": _Raw("NaN")}, "tc_fs must be a finite number, got nan"),
    "tc_zero": ({"tc_fs": 0}, "tc_fs must be positive, got 0"),
    "tc_string": ({"tc_fs": "10"}, "tc_fs must be a number, got '10'"),
    "tc_huge_integer": ({"tc_fs": _Raw("1" + "0" * 400)}, "tc_fs must be a finite number"),
    "gate_width_zero": ({"gate_width_fs": 0.0}, "gate_width_fs must be positive, got 0.0"),
    "gate_width_inf": ({"gate_width_fs": _Raw("-Infinity")},
                       "gate_width_fs must be a finite number, got -inf"),
    "segment_string": ({"unroll_segment_fs": "5"}, "unroll_segment_fs must be a number"),
    "has_energy_string": ({"has_energy": "false"},
                          "has_energy must be true or false, got 'false'"),
    "format_version_bool": ({"format_version": True},
                            "model metadata has an invalid format_version True"),
    "format_version_float": ({"format_version": 1.5},
                             "model metadata has an invalid format_version 1.5"),
    "format_version_newer": ({"format_version": 99}, "model format version 99 is newer"),
    "n_basis_zero": ({"head": "basis", "n_basis": 0}, "n_basis must be an integer 1..4096, got 0"),
    "n_basis_huge": ({"head": "basis", "n_basis": 10**9},
                     "n_basis must be an integer 1..4096, got 1000000000"),
    "n_basis_missing": ({"head": "basis"}, "n_basis must be an integer 1..4096, got None"),
    "n_members_huge": ({"format_version": 2, "n_members": 10**9},
                       "n_members must be an integer 1..256, got 1000000000"),
    "n_members_bool": ({"format_version": 2, "n_members": True},
                       "n_members must be an integer 1..256, got True"),
    "dummy_points_string": ({"dummy_points_A": "origin"},
                            "dummy_points_A must be 3 points of 3 numbers, got 'origin'"),
    "row_short": ({"ic_rows": _rows((0, (0, -1, -2)))},
                  "ic_rows[0] must be 4 integers (atom, ref1, ref2, ref3), got [0, -1, -2]"),
    "row_float": ({"ic_rows": _rows((1, (1, 0.5, -1, -2)))},
                  "ic_rows[1] must be 4 integers"),
    "row_atom_twice": ({"ic_rows": _rows((8, (7, 2, 1, 0)))},
                       "ic_rows: IC rows must define every atom exactly once (missing [9], "
                       "repeated [8], 1-based)"),
    "row_later_reference": ({"ic_rows": _rows((1, (1, 2, -1, -2)))},
                            "ic_rows: IC row 2 refers to atom(s) not placed by an earlier row"),
    "row_unknown_dummy": ({"ic_rows": _rows((0, (0, -1, -2, -4)))},
                          "ic_rows: IC row 1 refers to atom(s) not placed by an earlier row"),
    "row_repeated_reference": ({"ic_rows": _rows((2, (2, 1, 1, -1)))},
                               "ic_rows: IC row 3 repeats an atom"),
    "row_references_itself": ({"ic_rows": _rows((2, (2, 2, 0, -1)))},
                              "ic_rows: IC row 3 repeats an atom"),
    "not_json": ({"tc_fs": _Raw("{oops")}, "model metadata field tc_fs is not valid JSON"),
    "too_many_digits": ({"tc_fs": _Raw("1" * 5000)},
                        "model metadata field tc_fs is not valid JSON"),
    "too_deep": ({"provenance": _Raw("[" * 100_000)},
                 "model metadata field provenance nests arrays and objects 100000 levels "
                 "deep, more than the limit of 64"),
    "too_long": ({"atomic_numbers": _Raw("[" + "1, " * (MAX_VALUE_CHARS // 3) + "1]")},
                 f"model metadata field atomic_numbers is {MAX_VALUE_CHARS + 2} bytes long, "
                 f"more than the limit of {MAX_VALUE_CHARS} bytes"),
}


@pytest.mark.parametrize("case", sorted(SCHEMA_CASES))
def test_metadata_that_breaks_the_schema_is_refused_in_one_line(case):
    changes, message = SCHEMA_CASES[case]
    with pytest.raises(ModelError) as err:
        ModelDescription.from_metadata(_props(**changes))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_an_oversized_value_is_refused_before_it_is_parsed(monkeypatch):
    """A value longer than any real model's (10^9 atoms would take gigabytes) is refused
    before json parses it, so nothing of its size is built."""
    parsed, loads = [], json.loads
    monkeypatch.setattr(json, "loads", lambda text: parsed.append(len(text)) or loads(text))
    huge = _Raw("[" + "1," * (MAX_VALUE_CHARS // 2) + "1]")
    with pytest.raises(ModelError, match="atomic_numbers is .* bytes long, more than the limit"):
        ModelDescription.from_metadata(_props(atomic_numbers=huge))
    assert all(n <= MAX_VALUE_CHARS for n in parsed)


def test_a_schema_violation_in_a_file_names_the_file(tmp_path):
    good = write_model(tmp_path / "good.onnx")
    bad = with_metadata(good, tmp_path / "bad_tc.onnx", _props(tc_fs=_Raw("Infinity")))
    with pytest.raises(ModelError, match=r"^bad_tc\.onnx: model metadata is malformed: tc_fs "
                                         r"must be a finite number, got inf$"):
        Session(bad, device="cpu")


def _wired(path: Path, *, swap: bool = False, offset_A: float = 0.0,
           ignore_times: bool = False, energy: bool = False, desc=None) -> Path:
    """Free flight wired wrong: outputs swapped, positions offset at every t (also t = 0),
    or frozen at the start (times ignored); optionally an energy output."""
    g = _Graph()
    x = g.op("Unsqueeze", "positions", g.const([1]))            # (B, 1, N, 3)
    v = g.op("Unsqueeze", "velocities", g.const([1]))
    t = g.op("Unsqueeze", "times", g.const([2, 3]))             # (B, K, 1, 1)
    zero = g.op("Mul", t, g.const(0.0))
    pos = g.op("Add", x, zero if ignore_times else g.op("Mul", v, t))
    pos = g.op("Add", pos, g.const(offset_A))
    vel = g.op("Add", v, zero)
    names = ["velocities_t", "positions_t"] if swap else ["positions_t", "velocities_t"]
    g.op("Identity", pos, out=names[0])
    g.op("Identity", vel, out=names[1])
    outputs = ["positions_t", "velocities_t"]
    if energy:
        g.op("Squeeze", zero, g.const([2, 3]), out="energy_t")
        outputs.append("energy_t")
    return _save(g, path, outputs, desc or description(has_energy=energy))


BAD_GRAPHS = {
    "swapped_outputs": (lambda p: _wired(p, swap=True),
                        "swapped.onnx: outputs positions_t and velocities_t are swapped"),
    "nan_outputs": (lambda p: write_model(p, nan_after_fs=-1.0),
                    "nan_outputs.onnx: output positions_t is NaN or inf at t = 0 fs (member 0)"),
    "tc_beyond_the_graph": (lambda p: write_model(p, nan_after_fs=5.0),
                            "output positions_t is NaN or inf at t = 10 fs (member 0) on the load "
                            "check: the graph does not predict up to the metadata's tc_fs = 10 fs"),
    "not_the_inputs_at_t0": (lambda p: _wired(p, offset_A=0.01),
                             # the bound's last digit is float32 rounding of the CPU's own
                             "output positions_t at t = 0 differs from the input by 0.01 Å "
                             "(member 0; at most 0.0001"),
    "times_ignored": (lambda p: _wired(p, ignore_times=True),
                      "output positions_t at t = tc equals the start although the atoms move: "
                      "the graph ignores its times input"),
    "energy_without_has_energy": (
        lambda p: _wired(p, energy=True, desc=description(has_energy=False)),
        "graph has output 'energy_t' but its metadata says has_energy false"),
    "energy_missing": (lambda p: _wired(p, desc=description(has_energy=True)),
                       "model lacks output 'energy_t'"),
    "no_member_axis": (
        lambda p: with_metadata(write_model(p.with_name("single.onnx")), p,
                                _props(format_version=2, n_members=2)),
        "output 'positions_t' has shape (1, 3, 9, 3), expected (2, 1, 3, 9, 3)"),
}


@pytest.mark.parametrize("case", sorted(BAD_GRAPHS))
def test_a_graph_that_disagrees_with_its_metadata_is_refused(tmp_path, case):
    build, message = BAD_GRAPHS[case]
    name = {"swapped_outputs": "swapped"}.get(case, case)
    path = build(tmp_path / f"{name}.onnx")
    with pytest.raises(ModelError) as err:
        Session(path, device="cpu")
    assert message in str(err.value)
    assert "\n" not in str(err.value) and str(err.value).startswith(path.name + ": ")


def test_the_cli_refuses_a_swapped_graph_in_one_line(tmp_path):
    model = _wired(tmp_path / "swapped.onnx", swap=True, energy=True)
    init = tmp_path / "init.extxyz"
    write_trajectory(Trajectory(time_fs=[0.0], positions=ETHANOL_POSITIONS_A[None],
                                velocities=thermal_velocities(1)[None], atomic_numbers=ETHANOL_Z,
                                masses=ETHANOL_MASSES_AMU), init)
    out = tmp_path / "out" / "pred.h5"
    out.parent.mkdir()
    result = CliRunner().invoke(cli.main, ["predict", "--model", str(model), "--init", str(init),
                                           "--times", "0:10:5", "--device", "cpu",
                                           "--out", str(out)])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines == ["gicnet: error: swapped.onnx: outputs positions_t and velocities_t are "
                     "swapped: at t = 0 positions_t holds the input velocities and "
                     "velocities_t the positions"]
    assert "Traceback" not in result.output and list(out.parent.iterdir()) == []


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_the_shipped_models_pass_the_load_check(path):
    session = Session(path, device="cpu", threads=1)
    assert session.description.n_atoms == 9


FIXTURE_OPTIONS = {"free": {}, "accel": {"accel_A_per_fs2": (1e-3, 0, 0)},
                   "spin": {"spin_per_fs": (0, 0, 0.01)}, "energy_error": {"energy_error_eV": 0.02},
                   "damage": {"energy_error_eV": 0.01, "damage": 1.0}, "clean": {"damage": 0.0},
                   "growth": {"growth": 1.0}, "no_energy": {"has_energy": False},
                   "short_tc": {"tc_fs": 5.0}}


@pytest.mark.parametrize("name", sorted(FIXTURE_OPTIONS))
def test_the_analytic_fixture_models_pass_the_load_check(tmp_path, name):
    Session(write_model(tmp_path / f"{name}.onnx", **FIXTURE_OPTIONS[name]), device="cpu")


def test_the_poisoned_fixture_models_pass_the_load_check(tmp_path):
    """They fail only from a damaged start; the probe's start (in its initial body frame,
    atoms 1 and 2 at z = 0) is undamaged."""
    for cheap in (True, False):
        Session(_poisoned_model(tmp_path / f"poison_{cheap}.onnx", 0.01, float(cheap)),
                device="cpu")


def test_the_load_check_works_with_every_session_option(tmp_path):
    path = write_model(tmp_path / "free.onnx")
    for options in ({"io_binding": True}, {"threads": 1}, {"max_chunk_bytes": 100},
                    {"providers": ["CPUExecutionProvider"]}):
        Session(path, device="cpu", **options)


def test_the_probe_start_is_a_plausible_molecule():
    """Representable (no collinear references, no overlaps), bonded atoms 0.9-1.6 Å apart,
    moving at thermal speeds, and the same for the same metadata."""
    desc = Session(SHIPPED[0], device="cpu").description
    feed = probe.probe_feed(desc)
    x, v = feed["positions"][0], feed["velocities"][0]
    for atom, ref1, _, _ in desc.ic_rows:
        if ref1 >= 0:
            assert 0.9 < np.linalg.norm(x[atom] - x[ref1]) < 1.6
    dist = np.linalg.norm(x[:, None] - x[None], axis=-1) + np.eye(len(x)) * 9
    assert dist.min() >= probe.PLAUSIBLE_DISTANCE_A
    assert 0.001 < np.abs(v).max() < 0.1
    np.testing.assert_array_equal(probe.probe_feed(desc)["positions"], feed["positions"])
    np.testing.assert_array_equal(feed["times"], [[0.0, desc.tc_fs / 2, desc.tc_fs]])


def _free_flight(feed, offset_A: float) -> dict[str, np.ndarray]:
    """Outputs (1, 1, 3, N, 3) of exact free flight from the probe's start, off by
    ``offset_A`` everywhere."""
    x, v, t = feed["positions"][0], feed["velocities"][0], feed["times"][0]
    positions = x + v * t[:, None, None] + offset_A
    return {"positions_t": positions[None, None],
            "velocities_t": np.broadcast_to(v, positions.shape)[None, None]}


def test_gpu_providers_get_a_tolerance_for_tf32_rounding():
    """TF32/float16 MatMul rounds ~5e-4 per step: a 1e-3 Å departure at t = 0 passes on a
    GPU provider but not on the CPU; a 0.05 Å one is refused on both."""
    desc = description()
    feed = probe.probe_feed(desc)
    probe.check_outputs(desc, feed, _free_flight(feed, 1e-3), "CUDAExecutionProvider")
    with pytest.raises(ModelError, match="positions_t at t = 0 differs from the input by 0.001"):
        probe.check_outputs(desc, feed, _free_flight(feed, 1e-3), "CPUExecutionProvider")
    for provider in ("CPUExecutionProvider", "CUDAExecutionProvider"):
        with pytest.raises(ModelError, match="differs from the input by 0.05"):
            probe.check_outputs(desc, feed, _free_flight(feed, 0.05), provider)


def test_the_load_check_costs_little():
    session = Session(SHIPPED[0], device="cpu", threads=1)
    costs = []
    for _ in range(5):
        probe._probe_start.cache_clear()
        start = time.perf_counter()
        session._probe()
        costs.append(time.perf_counter() - start)
    assert statistics.median(costs) < MAX_PROBE_S


def test_load_model_still_predicts_after_the_load_check(tmp_path):
    model = load_model(write_model(tmp_path / "free.onnx"), device="cpu")
    v = thermal_velocities(2)
    result = model.predict(ETHANOL_POSITIONS_A, v, [0.0, 5.0])
    np.testing.assert_allclose(result.positions[1], ETHANOL_POSITIONS_A + 5.0 * v, atol=1e-5)

"""Bad input: one clear line on stderr, a non-zero exit, no traceback and no output file.

Every kind of bad input in docs/robustness.md is fed twice: through the command line
(click's CliRunner, in-process) and through the Python API, where it must raise the
project's own error type with a one-line message.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import cli
from gicnet_runtime.core.description import METADATA_PREFIX
from gicnet_runtime.core.model import load_model
from gicnet_runtime.core.timegrid import parse_times
from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.errors import GeometryError, GicnetError, InputError, ModelError
from gicnet_runtime.io.formats import check_writable, read_trajectory, write_trajectory
from gicnet_runtime.io.initial import initial_conditions_for, read_initial_conditions
from gicnet_runtime.unroll.checkpoint import PropagateCheckpoint, checkpoint_path
from tests.onnx_fixtures import (
    ETHANOL_MASSES_AMU,
    ETHANOL_POSITIONS_A,
    ETHANOL_Z,
    description,
    external_data_model,
    identity_model,
    thermal_velocities,
    write_model,
)

VELOCITIES = thermal_velocities(5)


def _traj(positions=ETHANOL_POSITIONS_A, z=ETHANOL_Z, masses=ETHANOL_MASSES_AMU,
          velocities=None, times=(0.0,)) -> Trajectory:
    positions = np.asarray(positions, dtype=np.float64)
    positions = np.broadcast_to(positions, (len(times), *positions.shape[-2:]))
    if velocities is None:
        velocities = np.broadcast_to(VELOCITIES[: positions.shape[1]], positions.shape)
    return Trajectory(time_fs=list(times), positions=positions, velocities=velocities,
                      atomic_numbers=z, masses=masses)


def _write(folder: Path, name: str, traj: Trajectory) -> Path:
    return write_trajectory(traj, folder / name)


def _moved(atom: int, where) -> np.ndarray:
    p = ETHANOL_POSITIONS_A.copy()
    p[atom] = where(p)
    return p


def _text_replaced(path: Path, name: str, old: str, new: str) -> Path:
    out = path.with_name(name)
    text = path.read_text()
    assert old in text
    out.write_text(text.replace(old, new, 1))
    return out


def _escaping_onnx(folder: Path) -> Path:
    """A model whose initializer's external data lies outside the model's folder."""
    inside = folder / "model"
    inside.mkdir()
    (folder / "secret.bin").write_bytes(np.ones(3, np.float32).tobytes())
    return external_data_model(inside / "escape.onnx", "../secret.bin")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("robust_inputs")
    good = write_model(d / "free.onnx")
    init = _write(d, "init.extxyz", _traj())
    data = good.read_bytes()
    (d / "truncated.onnx").write_bytes(data[: len(data) // 2])
    (d / "garbage.onnx").write_bytes(b"\x08\x07garbage that is not a protobuf" * 10)
    newer = description().to_metadata()
    newer[METADATA_PREFIX + "format_version"] = "99"
    long_segment = description().to_metadata()
    long_segment[METADATA_PREFIX + "unroll_segment_fs"] = "12.0"
    lacking = description().to_metadata()
    del lacking[METADATA_PREFIX + "tc_fs"]
    h5 = _write(d, "init.h5", _traj())
    h5_bytes = h5.read_bytes()
    (d / "truncated.h5").write_bytes(h5_bytes[: len(h5_bytes) // 3])
    xyz_text = init.read_text()
    (d / "truncated.extxyz").write_text(xyz_text[: len(xyz_text) * 2 // 3])
    (d / "malformed.xyz").write_text("nine\natoms follow\nC 0 0\n")
    plain = d / "plain.xyz"
    plain.write_text("9\nno velocities\n" + "".join(
        f"{s} {x:.4f} {y:.4f} {z:.4f}\n"
        for s, (x, y, z) in zip("CCOHHHHHH", ETHANOL_POSITIONS_A)))
    swapped = ETHANOL_POSITIONS_A[[0, 2, 1, 3, 4, 5, 6, 7, 8]]
    times = (0.0, 1.0, 2.0)
    unsorted = _write(d, "unsorted.extxyz", _traj(times=times))
    return {
        "dir": d, "good": good, "init": init,
        "truncated_onnx": d / "truncated.onnx", "garbage_onnx": d / "garbage.onnx",
        "foreign_onnx": identity_model(d / "foreign.onnx", None),
        "newer_onnx": identity_model(d / "newer.onnx", newer),
        "long_segment_onnx": identity_model(d / "long_segment.onnx", long_segment),
        "lacking_onnx": identity_model(d / "lacking.onnx", lacking),
        "escape_onnx": _escaping_onnx(d),
        "truncated_h5": d / "truncated.h5", "truncated_xyz": d / "truncated.extxyz",
        "malformed_xyz": d / "malformed.xyz", "plain_xyz": plain,
        "water": _write(d, "water.extxyz", _traj(ETHANOL_POSITIONS_A[:3], (8, 1, 1),
                                                 (15.999, 1.008, 1.008))),
        "swapped": _write(d, "swapped.extxyz", _traj(swapped, np.array(ETHANOL_Z)[[0, 2, 1, 3, 4,
                                                                                 5, 6, 7, 8]],
                                                     np.array(ETHANOL_MASSES_AMU)[[0, 2, 1, 3, 4,
                                                                                   5, 6, 7, 8]])),
        "deuterated": _write(d, "deuterated.extxyz",
                             _traj(masses=ETHANOL_MASSES_AMU[:8] + (2.014,))),
        "nan": _text_replaced(init, "nan.extxyz", "-1.9237 ", "nan "),
        "overlap": _write(d, "overlap.extxyz", _traj(_moved(8, lambda p: p[2] + 0.1))),
        "collinear": _write(d, "collinear.extxyz",
                            _traj(_moved(2, lambda p: p[1] + 1.2 * (p[1] - p[0])))),
        "unsorted": _text_replaced(unsorted, "unsorted2.extxyz", "time_fs=2.0", "time_fs=0.5"),
        "a_file": d / "a_file.txt",
    }


def _cli(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args])


def _predict(files, *extra, init=None, model=None):
    return ["predict", "--model", model or files["good"], "--init", init or files["init"],
            "--times", "0:10:5", "--device", "cpu", *extra]


def _propagate(files, *extra, init=None, model=None):
    return ["propagate", "--model", model or files["good"], "--init", init or files["init"],
            "--device", "cpu", *extra]


def _case_args(files, case: str, out: Path) -> list:
    """Command-line arguments for one row of the table in docs/robustness.md."""
    pred = {
        "malformed_xyz": _predict(files, init=files["malformed_xyz"]),
        "truncated_extxyz": _predict(files, init=files["truncated_xyz"]),
        "truncated_h5md": _predict(files, init=files["truncated_h5"]),
        "missing_velocities": _predict(files, init=files["plain_xyz"]),
        "atom_count": _predict(files, init=files["water"]),
        "element_order": _predict(files, init=files["swapped"]),
        "masses": _predict(files, init=files["deuterated"]),
        "nan_positions": _predict(files, init=files["nan"]),
        "atoms_on_top": _predict(files, init=files["overlap"]),
        "collinear_triple": _predict(files, init=files["collinear"]),
        "corrupted_onnx": _predict(files, model=files["garbage_onnx"]),
        "truncated_onnx": _predict(files, model=files["truncated_onnx"]),
        "foreign_onnx": _predict(files, model=files["foreign_onnx"]),
        "missing_metadata": _predict(files, model=files["lacking_onnx"]),
        "newer_metadata": _predict(files, model=files["newer_onnx"]),
        "bad_unroll_segment": _predict(files, model=files["long_segment_onnx"]),
        "external_data_escape": _predict(files, model=files["escape_onnx"]),
        "unreadable_init": _predict(files, init=files["dir"] / "missing.extxyz"),
        "unknown_device": _predict(files)[:-2] + ["--device", "gpu"],
    }
    if case in pred:
        return pred[case] + ["--out", out]
    if case == "negative_time":
        return _predict(files)[:-4] + ["--times", "-1,5", "--device", "cpu", "--out", out]
    if case == "non_finite_time":
        return _predict(files)[:-4] + ["--times", "0,nan", "--device", "cpu", "--out", out]
    if case == "unsorted_times":
        return ["train", files["unsorted"], files["init"], "--out", out.parent / "run",
                "--device", "cpu"]
    if case == "duration_le_0":
        return _propagate(files, "--duration-fs", 0, "--dt-fs", 1, "--out", out)
    if case == "dt_le_0":
        return _propagate(files, "--duration-fs", 10, "--dt-fs", -0.5, "--out", out)
    if case == "segment_too_long":
        return _propagate(files, "--duration-fs", 10, "--segment-fs", 12, "--out", out)
    if case == "unwritable_output":
        files["a_file"].write_text("a file, not a folder")
        return _predict(files, "--out", files["a_file"] / "out.h5")
    if case == "unknown_output_format":
        return _predict(files, "--out", out.with_suffix(".pdf"))
    raise AssertionError(case)


CASES = ["malformed_xyz", "truncated_extxyz", "truncated_h5md", "missing_velocities",
         "atom_count", "element_order", "masses", "nan_positions", "atoms_on_top",
         "collinear_triple", "negative_time", "non_finite_time", "unsorted_times",
         "duration_le_0", "dt_le_0", "corrupted_onnx", "truncated_onnx", "foreign_onnx",
         "missing_metadata", "newer_metadata", "external_data_escape", "unreadable_init",
         "unwritable_output", "unknown_output_format", "unknown_device", "segment_too_long",
         "bad_unroll_segment"]


#: A fragment of the one-line message for each case (CLI and API).
EXPECTED = {
    "malformed_xyz": "Expected xyz header", "truncated_extxyz": "Frame has 6 atoms, expected 9",
    "truncated_h5md": "truncated file", "missing_velocities": "has no velocities",
    "atom_count": "the initial conditions have 3 atoms, the model 9",
    "element_order": "atom 2 is O in the initial conditions but C in the model",
    "masses": "atom 9 has mass 2.014 amu in the initial conditions but 1.008 amu",
    "nan_positions": "positions contain NaN or inf", "atoms_on_top": "(on top of each other)",
    "collinear_triple": "is collinear", "negative_time": "times must lie within the segment",
    "non_finite_time": "times_fs contain NaN or inf",
    "unsorted_times": "time_fs must be strictly increasing",
    "duration_le_0": "Invalid value for '--duration-fs': must be a positive number <= 1e15, got 0",
    "dt_le_0": "Invalid value for '--dt-fs': must be a number in [1e-6, 1e15], got -0.5",
    "corrupted_onnx": "cannot load model",
    "truncated_onnx": "cannot load model", "foreign_onnx": "model has no gicnet metadata",
    "missing_metadata": "model metadata lacks tc_fs",
    "newer_metadata": "model format version 99 is newer than this gicnet supports",
    "external_data_escape": "escapes model directory",
    "unreadable_init": "initial-conditions file not found",
    "unwritable_output": "output folder does not exist",
    "unknown_output_format": "cannot tell the format", "unknown_device": "'gpu'",
    "segment_too_long": "segment length must lie in (0, 10] fs",
    "bad_unroll_segment": "unroll_segment_fs must lie in (0, tc_fs]",
}
API_EXPECTED = {"truncated_extxyz": "cannot read", "negative_time": "times must lie",
                "non_finite_time": "times_fs contain NaN or inf",
                "duration_le_0": "duration_fs must be a positive number",
                "dt_le_0": "dt_fs must be a positive number"}


@pytest.mark.parametrize("case", CASES)
def test_cli_gives_one_line_and_writes_nothing(files, tmp_path, case):
    out = tmp_path / "out.h5"
    result = _cli(*_case_args(files, case, out))
    assert result.exit_code != 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gicnet: error: "), result.stderr
    assert EXPECTED[case] in lines[0], lines[0]
    assert isinstance(result.exception, SystemExit), result.exception  # not a traceback
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "an output file was written"


def _api(files, case: str):
    """The Python API call for one row; returns the expected error type."""
    model = load_model(files["good"], device="cpu")
    desc = model.description

    def init_of(name):
        return initial_conditions_for(desc, files[name], None, files["dir"])

    calls = {
        "malformed_xyz": (InputError, lambda: init_of("malformed_xyz")),
        "truncated_extxyz": (InputError, lambda: init_of("truncated_xyz")),
        "truncated_h5md": (InputError, lambda: read_trajectory(files["truncated_h5"])),
        "missing_velocities": (InputError, lambda: init_of("plain_xyz")),
        "atom_count": (InputError, lambda: init_of("water")),
        "element_order": (InputError, lambda: init_of("swapped")),
        "masses": (InputError, lambda: init_of("deuterated")),
        "nan_positions": (InputError, lambda: model.predict(
            np.where(np.eye(9, 3, dtype=bool), np.inf, ETHANOL_POSITIONS_A), VELOCITIES, [1.0])),
        "atoms_on_top": (GeometryError, lambda: model.propagate(
            _moved(8, lambda p: p[2] + 0.1), VELOCITIES, 20.0, 1.0)),
        "collinear_triple": (GeometryError, lambda: model.predict(
            _moved(2, lambda p: p[1] + 1.2 * (p[1] - p[0])), VELOCITIES, [1.0])),
        "negative_time": (InputError, lambda: model.predict(ETHANOL_POSITIONS_A, VELOCITIES,
                                                            [-1.0, 2.0])),
        "non_finite_time": (InputError, lambda: model.predict(ETHANOL_POSITIONS_A, VELOCITIES,
                                                              [np.nan])),
        "unsorted_times": (InputError, lambda: read_trajectory(files["unsorted"])),
        "duration_le_0": (InputError, lambda: model.propagate(ETHANOL_POSITIONS_A, VELOCITIES,
                                                              -5.0, 1.0)),
        "dt_le_0": (InputError, lambda: model.propagate(ETHANOL_POSITIONS_A, VELOCITIES, 10.0,
                                                        0.0)),
        "corrupted_onnx": (ModelError, lambda: load_model(files["garbage_onnx"])),
        "truncated_onnx": (ModelError, lambda: load_model(files["truncated_onnx"])),
        "foreign_onnx": (ModelError, lambda: load_model(files["foreign_onnx"])),
        "missing_metadata": (ModelError, lambda: load_model(files["lacking_onnx"])),
        "newer_metadata": (ModelError, lambda: load_model(files["newer_onnx"])),
        "external_data_escape": (ModelError, lambda: load_model(files["escape_onnx"])),
        "unreadable_init": (InputError, lambda: read_initial_conditions(files["dir"])),
        "unwritable_output": (InputError, lambda: check_writable(files["init"] / "x.h5")),
        "unknown_output_format": (InputError, lambda: write_trajectory(_traj(),
                                                                       files["dir"] / "x.pdf")),
        "unknown_device": (GicnetError, lambda: load_model(files["good"], device="gpu")),
        "segment_too_long": (InputError, lambda: model.propagate(
            ETHANOL_POSITIONS_A, VELOCITIES, 10.0, 1.0, segment_fs=12.0)),
        "bad_unroll_segment": (ModelError, lambda: load_model(files["long_segment_onnx"])),
    }
    return calls[case]


@pytest.mark.parametrize("case", CASES)
def test_api_raises_the_projects_error_in_one_line(files, case):
    error, call = _api(files, case)
    with pytest.raises(error) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and API_EXPECTED.get(case, EXPECTED[case]) in message, message


def test_parse_times_rejects_a_non_positive_step():
    with pytest.raises(InputError, match="time step must be positive"):
        parse_times("0:10:0")


def test_resume_with_other_settings_is_refused(files, tmp_path):
    model = load_model(files["good"], device="cpu")
    out = tmp_path / "run.h5"
    saver = PropagateCheckpoint(checkpoint_path(out), every_s=0.0)
    model.propagate(ETHANOL_POSITIONS_A, VELOCITIES, 30.0, 1.0, checkpoint=saver)
    assert saver.path.is_file()
    result = _cli(*_propagate(files, "--duration-fs", 40, "--dt-fs", 1, "--out", out,
                              "--resume"))
    assert result.exit_code == 1
    assert result.stderr.strip().endswith("the checkpoint was made with other models, initial "
                                          "conditions or settings; run without --resume to "
                                          "start again")
    assert not out.exists()


def test_write_failure_is_one_line_and_leaves_no_file(tmp_path, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("gicnet_runtime.io.mlatom_npz.np.savez", full_disk)
    with pytest.raises(InputError, match="cannot write .*No space left on device"):
        write_trajectory(_traj(), tmp_path / "x.npz")
    assert os.listdir(tmp_path) == []

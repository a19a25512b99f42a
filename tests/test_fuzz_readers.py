"""Fuzzing every reader: random bytes and mutated valid files raise only gicnet's errors.

A reader may accept a mutated file (a changed digit is still a number); what it must
never do is fail with anything but :class:`gicnet_runtime.errors.GicnetError`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gicnet_runtime.core.description import ModelDescription
from gicnet_runtime.core.icdef import ICDefinition
from gicnet_runtime.core.session import Session
from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.errors import GicnetError
from gicnet_runtime.io.formats import read_trajectory, write_trajectory
from gicnet_runtime.io.initial import read_initial_conditions, read_velocity_blocks
from gicnet_runtime.unroll.checkpoint import load_state
from tests.onnx_fixtures import (
    ETHANOL_MASSES_AMU,
    ETHANOL_POSITIONS_A,
    ETHANOL_Z,
    description,
    thermal_velocities,
    write_model,
)

FUZZ = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
SUFFIXES = (".h5", ".extxyz", ".xyz", ".traj", ".npz")
_DIR = Path(tempfile.mkdtemp(prefix="gicnet_fuzz_"))


def _valid_bytes() -> dict[str, bytes]:
    traj = Trajectory(time_fs=[0.0, 0.5], positions=np.stack([ETHANOL_POSITIONS_A] * 2),
                      velocities=thermal_velocities(1, count=2), atomic_numbers=ETHANOL_Z,
                      masses=ETHANOL_MASSES_AMU, potential_energy=[-1.0, -1.1],
                      kinetic_energy=[0.1, 0.2], info={"engine": "fuzz"})
    out = {}
    for suffix in SUFFIXES:
        path = write_trajectory(traj, _DIR / f"valid{suffix}")
        out[suffix] = path.read_bytes()
    out[".onnx"] = write_model(_DIR / "valid.onnx").read_bytes()
    return out


VALID = _valid_bytes()


def _mutated(data: bytes, edits: list[tuple[int, int, int]], cut: float | None) -> bytes:
    """Apply (kind, position, byte) edits: 0 overwrite, 1 insert, 2 delete; then truncate."""
    buf = bytearray(data)
    for kind, pos, value in edits:
        i = pos % max(1, len(buf))
        if kind == 0 and buf:
            buf[i] = value
        elif kind == 1:
            buf.insert(i, value)
        elif buf:
            del buf[i]
    if cut is not None:
        buf = buf[: int(len(buf) * cut)]
    return bytes(buf)


EDITS = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2**31), st.integers(0, 255)),
                 min_size=1, max_size=8)
CUT = st.none() | st.floats(0.0, 1.0)


def _file(name: str, data: bytes) -> Path:
    path = _DIR / name
    path.write_bytes(data)
    return path


def _only_gicnet_errors(call) -> None:
    try:
        call()
    except GicnetError as err:
        assert "\n" not in str(err)


@pytest.mark.parametrize("suffix", SUFFIXES)
@FUZZ
@given(data=st.binary(max_size=600))
def test_random_bytes_to_trajectory_readers(suffix, data):
    path = _file(f"random{suffix}", data)
    _only_gicnet_errors(lambda: read_trajectory(path, frame_spacing_fs=0.5))


@pytest.mark.parametrize("suffix", SUFFIXES)
@FUZZ
@given(edits=EDITS, cut=CUT)
def test_mutated_trajectory_files(suffix, edits, cut):
    path = _file(f"mutated{suffix}", _mutated(VALID[suffix], edits, cut))
    _only_gicnet_errors(lambda: read_trajectory(path, frame_spacing_fs=0.5))


@pytest.mark.parametrize("suffix", (".extxyz", ".xyz", ".h5", ".npz"))
@FUZZ
@given(edits=EDITS, cut=CUT)
def test_mutated_initial_conditions(suffix, edits, cut):
    path = _file(f"init{suffix}", _mutated(VALID[suffix], edits, cut))
    _only_gicnet_errors(lambda: read_initial_conditions(path))


@FUZZ
@given(text=st.text(alphabet="0123456789 .-eE\nCHOx+na", max_size=300), n=st.integers(1, 4))
def test_velocity_blocks(text, n):
    path = _file("velocities.txt", text.encode())
    _only_gicnet_errors(lambda: read_velocity_blocks(path, n))


@FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes_to_velocity_blocks_and_ic_files(data):
    path = _file("random.ic", data)
    _only_gicnet_errors(lambda: read_velocity_blocks(path, 3))
    _only_gicnet_errors(lambda: ICDefinition.read(path))


@FUZZ
@given(edits=EDITS, cut=CUT)
def test_mutated_onnx_models(edits, cut):
    path = _file("mutated.onnx", _mutated(VALID[".onnx"], edits, cut))
    _only_gicnet_errors(lambda: Session(path, device="cpu"))


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                           lambda inner: st.lists(inner, max_size=4), max_leaves=8)


@FUZZ
@given(changes=st.dictionaries(st.sampled_from(sorted(description().to_metadata())),
                               JSON_VALUES | st.text(max_size=20), max_size=4))
def test_mutated_metadata(changes):
    import json

    props = description().to_metadata()
    for key, value in changes.items():
        props[key] = value if isinstance(value, str) and value[:1] == "!" else json.dumps(value)
    _only_gicnet_errors(lambda: ModelDescription.from_metadata(props))


@FUZZ
@given(data=st.binary(max_size=400))
def test_random_bytes_to_propagate_checkpoints(data):
    path = _file("random.resume.npz", data)
    _only_gicnet_errors(lambda: load_state(path, "key"))

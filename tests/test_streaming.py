"""Streamed unrolling: frames go to a spool as they become final, the checkpoint holds no
frames, and the files written equal the in-memory trajectories; the format registry
writes a trajectory given in blocks exactly as given whole."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gicnet_runtime.core.model import load_model
from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.errors import InputError
from gicnet_runtime.io.formats import (
    FORMATS,
    REGISTRY,
    SUFFIX_FORMATS,
    read_trajectory,
    write_trajectory,
    write_trajectory_blocks,
)
from gicnet_runtime.io.spool import FrameSpool, spool_path
from gicnet_runtime.unroll.checkpoint import checkpoint_path
from gicnet_runtime.unroll.to_files import propagate_to_files
from tests.onnx_fixtures import ETHANOL_POSITIONS_A, thermal_velocities, write_model

SUFFIX = {"h5md": ".h5", "extxyz": ".xyz", "traj": ".traj", "npz": ".npz"}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stream")
    return load_model([write_model(folder / "a.onnx"), write_model(folder / "b.onnx")],
                      device="cpu", threads=1)


def _start(count=3):
    return np.stack([ETHANOL_POSITIONS_A] * count), thermal_velocities(1, count=count)


def _same(a: Trajectory, b: Trajectory) -> None:
    """Equal frames (to float64 round-off: extended XYZ keeps velocities as momenta)."""
    for name in ("time_fs", "positions", "velocities", "potential_energy", "kinetic_energy"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64),
                                       rtol=1e-14, atol=0.0, err_msg=name)
    assert a.info == b.info


def test_registry_is_consistent():
    assert set(FORMATS) == set(REGISTRY)
    for name, fmt in REGISTRY.items():
        assert all(SUFFIX_FORMATS[s] == name for s in fmt.suffixes)
        assert callable(fmt.reader()) and callable(fmt.block_writer())


@pytest.mark.parametrize("fmt", FORMATS)
def test_blocks_write_the_same_file_content_as_one_trajectory(model, tmp_path, fmt):
    pytest.importorskip("ase")
    pytest.importorskip("h5py")
    pos, vel = _start(1)
    whole = model.propagate(pos, vel, 37.0, 0.5)[0]
    cuts = [0, 5, 6, 40, whole.n_frames]
    blocks = [dataclasses.replace(whole, time_fs=whole.time_fs[a:b],
                                  positions=whole.positions[a:b],
                                  velocities=whole.velocities[a:b],
                                  potential_energy=whole.potential_energy[a:b],
                                  kinetic_energy=whole.kinetic_energy[a:b], info={})
              for a, b in zip(cuts[:-1], cuts[1:])]
    one = write_trajectory(whole, tmp_path / f"one{SUFFIX[fmt]}")
    many = write_trajectory_blocks(blocks, tmp_path / f"many{SUFFIX[fmt]}", whole.info)
    _same(read_trajectory(one), read_trajectory(many))
    _same(read_trajectory(many), whole)


def test_spool_round_trip_and_restore(tmp_path):
    rng = np.random.default_rng(0)
    spool = FrameSpool(tmp_path / "x.frames", 2, 7, 3, has_energy=True)
    spool.begin()
    pos, vel = rng.normal(size=(2, 7, 3, 3)), rng.normal(size=(2, 7, 3, 3))
    pot = rng.normal(size=(2, 7))
    spool.write(np.array([0, 1]), 0, pos[:, :4], vel[:, :4], pot[:, :4])
    header, arrays = spool.mark()
    assert arrays == {} and header["shape"] == [2, 7, 3]
    spool.close()
    again = FrameSpool(tmp_path / "x.frames", 2, 7, 3, has_energy=True)
    again.restore(header, arrays)
    again.write(np.array([1]), 4, pos[1:, 4:], vel[1:, 4:], pot[1:, 4:])
    blocks = list(again.blocks(1, 7, np.arange(7.0), np.array([1, 1, 8]),
                               np.array([1.0, 1.0, 16.0]), block_frames=3))
    assert [b.n_frames for b in blocks] == [3, 3, 1]
    got = np.concatenate([b.positions for b in blocks])
    np.testing.assert_array_equal(got, pos[1].astype(np.float32))
    np.testing.assert_array_equal(np.concatenate([b.potential_energy for b in blocks]),
                                  pot[1].astype(np.float32))
    with pytest.raises(InputError, match="not made for this run"):
        FrameSpool(tmp_path / "x.frames", 3, 7, 3, True).restore(header, {})
    again.remove()
    with pytest.raises(InputError, match="missing"):
        FrameSpool(tmp_path / "x.frames", 2, 7, 3, True).restore(header, {})


@pytest.mark.parametrize("suffix", [".h5", ".xyz"])
def test_streamed_files_equal_the_in_memory_trajectories(model, tmp_path, suffix):
    pytest.importorskip("ase")
    pytest.importorskip("h5py")
    pos, vel = _start(3)
    reference = model.propagate(pos, vel, 95.0, 0.7, energy_threshold_eV=0.5)
    out = tmp_path / f"run{suffix}"
    written = propagate_to_files(model, pos, vel, 95.0, 0.7, out, energy_threshold_eV=0.5,
                                 checkpoint_every_s=0.0)
    assert [p.name for p, _ in written] == [f"run_{b:03d}{suffix}" for b in range(3)]
    for (path, run), traj in zip(written, reference):
        assert run.n_frames == traj.n_frames and run.info == traj.info
        _same(read_trajectory(path), traj)
    assert not checkpoint_path(out).exists() and not spool_path(out).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p, _ in written]


def test_checkpoint_grows_by_a_few_numbers_per_segment_not_by_frames(model, tmp_path):
    """The spool's checkpoint holds the state (every member's prediction of the last
    segment, the attempts backtracking may still use: both bounded, and a member, an error
    and a flag per segment), not the frames: 10x the duration adds 17 bytes per
    trajectory and extra segment (plus 8 for its frame index), while its 20 frames would
    add ~8.6 kB."""
    pos, vel = _start(2)
    sizes = []
    for duration in (60.0, 600.0):
        out = tmp_path / f"d{duration:g}.h5"
        arrays = {}

        def spy(n, out=out, arrays=arrays):
            if checkpoint_path(out).exists():
                with np.load(checkpoint_path(out)) as saved:
                    arrays.update({k: saved[k].nbytes for k in saved.files
                                   if not k.startswith("attempt")})

        propagate_to_files(model, pos, vel, duration, 0.5, out, progress=spy,
                           checkpoint_every_s=0.0)
        assert "sink_positions" not in arrays and "positions" not in arrays
        sizes.append(sum(v for k, v in arrays.items() if k != "header"))
    extra_segments = 60 - 6
    assert 0 < sizes[1] - sizes[0] <= (2 * 17 + 8) * extra_segments, sizes

"""Propagate and simulate on a real local Ray cluster (2 CPUs): the same trajectories as
one process, nothing lost and nothing written twice when a worker is killed mid-run,
and --resume skipping the shards already written."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from gicnet_runtime.cluster.shards import (
    SHARD_ALIGN,
    ShardLedger,
    default_shard_size,
    ledger_path,
    shard_bounds,
)
from gicnet_runtime.errors import InputError, Interrupted
from gicnet_runtime.io.formats import read_trajectory
from gicnet_runtime.io.outputs import numbered_paths

ray = pytest.importorskip("ray")

#: The frames of a Ray run must equal the one-process run's to this, Å (the issue's bound).
SAME_A = 1e-6


@pytest.fixture(scope="module")
def cluster():
    """A real local Ray cluster of 2 CPUs for this module (gicnet joins it)."""
    if ray.is_initialized():
        ray.shutdown()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address="local", num_cpus=2, include_dashboard=False,  # a new one, always
             log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def shipped():
    from gicnet_runtime.core.model import load_model
    from gicnet_runtime.io.initial import initial_conditions_for

    model = load_model(None, device="cpu", threads=1)
    start = initial_conditions_for(model.description, None, None, model.paths[0].parent)
    return model, start.positions, start.velocities


def _starts(shipped, count: int):
    """``count`` distinct starts: the shipped ones, velocities scaled on repeats."""
    _, positions, velocities = shipped
    index = np.arange(count) % len(positions)
    scale = 1.0 + 0.02 * (np.arange(count) // len(positions))
    return positions[index], velocities[index] * scale[:, None, None]


def _local(shipped, positions, velocities, duration_fs, out):
    from gicnet_runtime.unroll.to_files import propagate_to_files

    written = propagate_to_files(shipped[0], positions, velocities, duration_fs, 0.5, out)
    return [read_trajectory(path) for path, _ in written]


def _both(shipped, count: int, duration_fs: float, tmp_path: Path, suffix: str, **ray_options):
    """``count`` starts unrolled for ``duration_fs`` in one process (one batch) and on Ray
    with ``ray_options``: (one-process trajectories, Ray's (path, run) list, Ray's out)."""
    from gicnet_runtime.cluster.propagate import propagate_on_ray

    positions, velocities = _starts(shipped, count)
    (tmp_path / "one").mkdir()
    (tmp_path / "ray").mkdir()
    reference = _local(shipped, positions, velocities, duration_fs,
                       tmp_path / "one" / f"t{suffix}")
    out = tmp_path / "ray" / f"t{suffix}"
    written = propagate_on_ray(shipped[0], positions, velocities, duration_fs, 0.5, out,
                               **ray_options)
    return reference, written, out


def _max_difference(paths, reference) -> float:
    worst = 0.0
    for path, ref in zip(paths, reference):
        traj = read_trajectory(path)
        assert traj.n_frames == ref.n_frames
        worst = max(worst, float(np.abs(traj.positions - ref.positions).max()))
    return worst


# -- shards and the ledger (no Ray) -------------------------------------------------------

def test_shard_bounds_cover_every_trajectory_once():
    assert shard_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert shard_bounds(3, 8) == [(0, 3)]
    with pytest.raises(InputError):
        shard_bounds(0, 4)


def test_default_shard_size_is_aligned_and_bounded_by_memory():
    assert default_shard_size(10, 20001, 9, 2) == 4  # ceil(10 / 4) = 3, aligned up
    assert default_shard_size(1000, 401, 9, 2) % SHARD_ALIGN == 0
    # 100 ps of frames every 0.5 fs: 43 MB per trajectory, so one per shard
    assert default_shard_size(64, 200001, 9, 2) == 1


def test_ledger_resumes_only_unchanged_shards(tmp_path):
    out = tmp_path / "t.xyz"
    files = [tmp_path / f"t_00{k}.xyz" for k in range(3)]
    for k, f in enumerate(files):
        f.write_text(f"frames of {k}")
    ledger = ShardLedger(ledger_path(out), "key", 3, 2)
    assert ledger.start(resume=False) == set()
    ledger.record(0, [(files[0], {"n_frames": 5}), (files[1], {"n_frames": 5})])
    ledger.record(1, [(files[2], {"n_frames": 7})])
    again = ShardLedger(ledger_path(out), "key", 3, 2)
    assert again.start(resume=True) == {0, 1}
    assert [run["n_frames"] for _, run in again.runs(0)] == [5, 5]
    files[2].write_text("edited")  # shard 1's file changed: that shard is done again
    with open(ledger_path(out), "a") as fh:
        fh.write('{"shard": 1, "fi')  # a line torn by a crash is ignored
    third = ShardLedger(ledger_path(out), "key", 3, 2)
    assert third.start(resume=True) == {0}
    with pytest.raises(InputError, match="other models"):
        ShardLedger(ledger_path(out), "other key", 3, 2).start(resume=True)
    with pytest.raises(InputError, match="shard size"):
        ShardLedger(ledger_path(out), "key", 3, 1).start(resume=True)
    assert ShardLedger(ledger_path(out), "key", 3, 2).start(resume=False) == set()


def test_without_ray_installed_the_option_says_how_to_get_it(monkeypatch):
    import sys

    from gicnet_runtime.cluster.connect import connect

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(InputError, match=r"pip install 'gicnet\[ray\]'"), connect(None):
        pass


# -- propagate on Ray ----------------------------------------------------------------------

def test_ray_propagate_gives_the_frames_of_one_process(cluster, shipped, tmp_path):
    """8 trajectories in shards of 4 on 2 actors against one batch of 8: the same frames
    (batches of multiples of SHARD_ALIGN get identical float32 network results)."""
    reference, written, out = _both(shipped, 8, 40.0, tmp_path, ".h5", shard_size=4,
                                    workers=2)
    paths = [p for p, _ in written]
    assert paths == numbered_paths(out, 8)
    assert _max_difference(paths, reference) <= SAME_A
    assert [run.n_frames for _, run in written] == [81] * 8
    assert not ledger_path(out).exists()  # removed when done
    first = read_trajectory(paths[5])
    assert first.info["models"] == [p.name for p in shipped[0].paths]


def test_unaligned_shards_stay_within_float32_noise(cluster, shipped, tmp_path):
    """Shards of 3 (batches of 3 and 2) against one batch of 5: the network's float32
    results differ in the 7th digit, so the trajectories agree closely but not exactly;
    a shard mapped to the wrong trajectories would be off by tenths of an Å."""
    reference, written, _ = _both(shipped, 5, 40.0, tmp_path, ".xyz", shard_size=3,
                                  workers=2)
    assert _max_difference([p for p, _ in written], reference) < 1e-4


def _actor_pid(actor) -> int:
    return ray.get(actor.pid.remote())


def test_a_worker_killed_mid_run_loses_nothing_and_writes_nothing_twice(cluster, shipped,
                                                                         tmp_path):
    """16 trajectories in 4 shards on 2 actors; when shard 0 is written, the other actor,
    busy with its shard, is killed (SIGKILL): Ray restarts it and runs its shards again;
    every shard is written exactly once and the frames are the one-process run's."""
    written_shards, killed = [], {}

    def on_shard(done):
        written_shards.append(done.index)
        if not killed:
            victim = _actor_pid(next(a for a in done.actors if a != done.actor))
            os.kill(victim, signal.SIGKILL)
            killed["pid"] = victim
        elif len(written_shards) == 4:
            killed["after"] = [_actor_pid(a) for a in done.actors]

    reference, written, _ = _both(shipped, 16, 100.0, tmp_path, ".npz", shard_size=4,
                                  workers=2, on_shard=on_shard)
    assert sorted(written_shards) == [0, 1, 2, 3]  # each shard written once
    assert killed["pid"] not in killed["after"]  # the killed actor was replaced
    assert _max_difference([p for p, _ in written], reference) <= SAME_A


def test_interrupted_run_resumes_skipping_the_written_shards(cluster, shipped, tmp_path):
    from gicnet_runtime.cluster.propagate import propagate_on_ray

    positions, velocities = _starts(shipped, 12)
    out = tmp_path / "t.xyz"
    done_first = []

    def stop_after_one():
        return len(done_first) >= 1

    with pytest.raises(Interrupted, match="--resume"):
        propagate_on_ray(shipped[0], positions, velocities, 30.0, 0.5, out, shard_size=4,
                         workers=1, interrupted=stop_after_one,
                         on_shard=lambda done: done_first.append(done.index))
    lines = ledger_path(out).read_text().splitlines()
    finished = {json.loads(line)["shard"] for line in lines[1:]}
    assert finished and len(finished) < 3
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("t_*.xyz")}
    resumed, progress = [], []
    written = propagate_on_ray(shipped[0], positions, velocities, 30.0, 0.5, out,
                               shard_size=4, workers=1, resume=True,
                               on_shard=lambda done: resumed.append(done.index),
                               progress=progress.append)
    assert sorted(resumed) == sorted(set(range(3)) - finished)  # finished ones skipped
    assert sum(progress) == 12 * 3  # every trajectory's 3 segments counted once
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # not rewritten
    (tmp_path / "one").mkdir()
    reference = _local(shipped, positions, velocities, 30.0, tmp_path / "one" / "t.xyz")
    assert _max_difference([p for p, _ in written], reference) <= SAME_A


def test_cli_propagate_on_ray(cluster, tmp_path):
    from click.testing import CliRunner

    from gicnet_runtime.cli import main

    out = tmp_path / "t.xyz"
    result = CliRunner().invoke(main, ["propagate", "--duration-fs", "20", "--frames", "0:2",
                                       "--out", str(out), "--ray", "--shard-size", "2"])
    assert result.exit_code == 0, result.output
    assert "on Ray (local)" in result.output
    assert [read_trajectory(p).n_frames for p in numbered_paths(out, 3)] == [41] * 3
    refused = CliRunner().invoke(main, ["propagate", "--duration-fs", "20", "--out",
                                        str(tmp_path / "u.xyz"), "--shard-size", "2"])
    assert refused.exit_code != 0
    assert "need --ray" in refused.output and "Traceback" not in refused.output


# -- simulate on Ray -----------------------------------------------------------------------

def _kill_first(task_name: str, found: dict, stop: threading.Event) -> None:
    """Kill (SIGKILL) the first Ray worker process seen running ``task_name``."""
    title = f"ray::{task_name}".encode()
    while not stop.is_set():
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    if fh.read().split(b"\0")[0] == title:
                        os.kill(int(pid), signal.SIGKILL)
                        found["pid"] = int(pid)
                        return
            except OSError:
                continue
        time.sleep(0.05)


def test_ray_simulate_survives_a_killed_worker_with_the_local_trajectories(cluster,
                                                                           tmp_path):
    pytest.importorskip("tblite")
    from gicnet_runtime.cluster.simulate import simulate_on_ray
    from gicnet_runtime.reference.simulate import SimulationSettings, simulate_to_files

    settings = SimulationSettings(molecule="CH3CH2OH", engine="gfn2", duration_fs=100.0,
                                  equilibration_fs=20.0)
    seeds = [5, 6, 7]
    found, stop = {}, threading.Event()
    killer = threading.Thread(target=_kill_first, args=("simulate_seed", found, stop))
    killer.start()
    written = []
    try:
        paths = simulate_on_ray(settings, seeds, tmp_path / "ray", on_written=written.append)
    finally:
        stop.set()
        killer.join()
    assert "pid" in found  # a worker was killed in the middle of its trajectory
    assert sorted(written) == sorted(paths)  # each seed written once
    local = simulate_to_files(settings, seeds, tmp_path / "local", workers=1, progress=False)
    for path, reference in zip(paths, local):
        a, b = read_trajectory(path), read_trajectory(reference)
        np.testing.assert_array_equal(a.positions, b.positions)  # bitwise: one thread each
        np.testing.assert_array_equal(a.velocities, b.velocities)
        assert a.info["seed"] == b.info["seed"]
    before = {p: p.stat().st_mtime_ns for p in paths}
    assert simulate_on_ray(settings, seeds, tmp_path / "ray") == paths  # nothing to redo
    assert {p: p.stat().st_mtime_ns for p in paths} == before


def test_cli_simulate_on_ray(cluster, tmp_path):
    pytest.importorskip("tblite")
    from click.testing import CliRunner

    from gicnet_runtime.cli import main

    result = CliRunner().invoke(main, ["simulate", "CH3CH2OH", "--duration-fs", "10",
                                       "--equilibration-fs", "5", "--n-trajectories", "2",
                                       "--out", str(tmp_path / "md"), "--ray"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in Path(tmp_path / "md").glob("*.h5")) == [
        "CH3CH2OH_seed0.h5", "CH3CH2OH_seed1.h5"]

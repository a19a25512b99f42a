"""``gicnet propagate --ray``: initial conditions sharded over Ray actors.

Each actor (:class:`ShardWorker`) holds one copy of the model (its files sent once,
to a named :class:`ModelFiles` actor, so the cluster's machines need no shared file system) in
one onnxruntime session, on a GPU of its own when the cluster has GPUs.  A shard is
unrolled in the actor exactly as ``gicnet propagate`` unrolls a run
(:func:`gicnet_runtime.unroll.to_files.propagate_to_files`, into the actor's scratch
folder) and comes back as the bytes of its trajectory files, which the driver writes,
each atomically, as soon as the shard is done, recording it in the shard ledger
(:mod:`gicnet_runtime.cluster.shards`).  Trajectories are independent in the
unrolling (ensemble choice and backtracking are per trajectory), so the files hold the
frames of the single-process run.

An actor that dies (a killed worker, a lost node) is restarted by Ray and its shard
run again there (``max_restarts``, ``max_task_retries``); only a finished shard is ever
written, once.  An interrupted or failed run keeps the shards already written, and
``resume=True`` skips them.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from gicnet_runtime.atomic import atomic_target
from gicnet_runtime.cluster.connect import cluster_size, connect, task_failure
from gicnet_runtime.cluster.shards import (
    ShardLedger,
    default_shard_size,
    ledger_path,
    summary,
)
from gicnet_runtime.core.model import Model
from gicnet_runtime.core.timegrid import frame_times_fs
from gicnet_runtime.errors import GicnetError, InputError, Interrupted
from gicnet_runtime.io.formats import format_of
from gicnet_runtime.io.outputs import numbered_paths
from gicnet_runtime.unroll.propagate import UnrolledRun, unroll_settings

#: Restarts of a dead actor, and re-runs of the shard it held.
MAX_RETRIES = 3
#: Shards queued per actor (one running, one waiting, so an actor never idles while
#: the driver writes files).
QUEUED_PER_ACTOR = 2
#: Seconds between checks for an interruption while shards are running.
POLL_S = 0.5


class ShardDone(NamedTuple):
    """What ``on_shard`` hears of a written shard: its index, the actor that unrolled it
    (one of ``actors``) and the seconds the actor spent on it (unrolling and formatting
    its files, without Ray's transfers)."""

    index: int
    actor: object
    actors: list
    compute_s: float


class ModelFiles:
    """A Ray actor that holds the model files' bytes for the run, so that every
    :class:`ShardWorker`, restarted ones too, fetches them from it wherever it runs."""

    def __init__(self, files: list[tuple[str, bytes]]) -> None:
        self.files = files

    def get(self) -> list[tuple[str, bytes]]:
        return self.files


class ShardWorker:
    """A Ray actor's state: the model, loaded once from its files' bytes.

    Args:
        store: the name of the run's :class:`ModelFiles` actor (its (name, bytes) of each
            model file, in member order); a name, not a handle, so that the actor's own
            arguments stay small and inline, which Ray needs to restart it safely.
        device, threads: as for :func:`gicnet_runtime.core.model.load_model`.
    """

    def __init__(self, store: str, device: str = "cpu", threads: int | None = 1) -> None:
        import ray

        from gicnet_runtime.core.model import load_model

        self.folder = Path(tempfile.mkdtemp(prefix="gicnet-actor-"))
        paths = []
        for name, data in ray.get(ray.get_actor(store).get.remote()):
            path = self.folder / "model" / name
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(data)
            paths.append(path)
        self.model = load_model(paths, device=device, threads=threads)

    def pid(self) -> int:
        """The actor's process id (tests kill it)."""
        return os.getpid()

    def unroll(self, index: int, first: int, positions: np.ndarray, velocities: np.ndarray,
               duration_fs: float, dt_fs: float, suffix: str, fmt: str,
               options: dict) -> tuple[int, list[tuple[bytes, int, dict]], float]:
        """Shard ``index``, trajectories ``first`` .. of the run: (index, [(file bytes,
        frames, info) per trajectory], seconds spent)."""
        from gicnet_runtime.unroll.to_files import propagate_to_files

        start = time.perf_counter()
        scratch = Path(tempfile.mkdtemp(prefix=f"shard{index}-", dir=self.folder))
        try:
            written = propagate_to_files(
                self.model, positions, velocities, duration_fs, dt_fs,
                scratch / f"shard{suffix}", fmt=fmt, checkpoint_every_s=math.inf,
                first_index=first, **options)
            files = [(path.read_bytes(), run.n_frames, run.info) for path, run in written]
            return index, files, time.perf_counter() - start
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def propagate_on_ray(model: Model, positions: np.ndarray, velocities: np.ndarray,
                     duration_fs: float, dt_fs: float, out: str | os.PathLike, *,
                     fmt: str | None = None, address: str | None = None,
                     workers: int | None = None, shard_size: int | None = None,
                     device: str = "auto", threads: int | None = None,
                     energy_threshold_eV: float | None = None,
                     restore_energy: bool | None = None, segment_fs: float | None = None,
                     unphysical: str = "error", resume: bool = False,
                     progress: Callable[[int], None] | None = None,
                     interrupted: Callable[[], bool] | None = None,
                     on_shard: Callable[[ShardDone], None] | None = None,
                     ) -> list[tuple[Path, UnrolledRun]]:
    """Unroll B trajectories on Ray into the files ``out`` names (as
    :func:`gicnet_runtime.unroll.to_files.propagate_to_files`: ``OUT_000.ext``, ...).

    Args:
        model, positions (B, N, 3) Å, velocities (B, N, 3) Å/fs, duration_fs, dt_fs, out,
            fmt, energy_threshold_eV, restore_energy, segment_fs, unphysical: as for
            ``propagate_to_files``.
        address: the Ray cluster (:func:`gicnet_runtime.cluster.connect.connect`).
        workers: actors (default: one per GPU of the cluster when it has GPUs and
            ``device`` is not "cpu", else one per CPU), at most one per shard.
        shard_size: trajectories per shard (default:
            :func:`gicnet_runtime.cluster.shards.default_shard_size`).
        device: "auto" (a GPU per actor when the cluster has GPUs), "cpu" or "cuda".
        threads: onnxruntime threads per actor (default: 1 on CPUs).
        resume: skip the shards an interrupted run of the same arguments wrote.
        progress: called with the segments of every shard written (or skipped).
        interrupted: polled while shards run; when True, the run stops and raises
            :class:`gicnet_runtime.errors.Interrupted` (the written shards are kept).
        on_shard: called with a :class:`ShardDone` after each shard is written (tests use
            it to kill an actor mid-run, benchmarks to time the shards).

    Returns:
        (path, its run) per trajectory; the shard ledger is deleted at the end.
    """
    kind = format_of(out, fmt)
    pos, vel, _ = model.validated_state(positions, velocities)
    options = {} if energy_threshold_eV is None else {"energy_threshold_eV": energy_threshold_eV}
    restore, segment = unroll_settings(model.description, restore_energy, segment_fs)
    options.update(restore_energy=restore, segment_fs=segment, unphysical=unphysical)
    key = model.run_key(pos, vel, duration_fs, dt_fs, restore, segment, **{
        k: v for k, v in options.items() if k in ("energy_threshold_eV", "unphysical")})
    paths = numbered_paths(out, pos.shape[0])
    n_frames = frame_times_fs(duration_fs, dt_fs).size
    segments = model.segment_count(duration_fs, dt_fs, segment)
    files = [(p.name, p.read_bytes()) for p in model.paths]

    with connect(address) as ray:
        cpus, gpus = cluster_size(ray)
        use_gpu = _use_gpu(device, gpus)
        n_workers = workers or (gpus if use_gpu else max(cpus, 1))
        size = shard_size or default_shard_size(pos.shape[0], n_frames, pos.shape[1],
                                                n_workers)
        ledger = ShardLedger(ledger_path(out), key, pos.shape[0], size)
        finished = ledger.start(resume)
        todo = [k for k in range(len(ledger.bounds)) if k not in finished]
        if progress is not None and finished:
            progress(sum(_width(ledger.bounds[k]) for k in finished) * segments)
        if todo:
            *actors, store = _actors(ray, files, min(n_workers, len(todo)), use_gpu, threads)
            shard_args = (duration_fs, dt_fs, Path(out).suffix, kind, options)
            _run_shards(ray, actors, todo, ledger, pos, vel, paths, shard_args,
                        lambda k: progress(_width(ledger.bounds[k]) * segments)
                        if progress is not None else None, interrupted, on_shard)
            ray.kill(store)
    runs = []
    for k in range(len(ledger.bounds)):
        runs += [(path, UnrolledRun(run["n_frames"], run)) for path, run in ledger.runs(k)]
    ledger.remove()
    return runs


def _use_gpu(device: str, gpus: int) -> bool:
    if device == "cuda" and gpus == 0:
        raise InputError("--device cuda: the Ray cluster has no GPUs")
    return device != "cpu" and gpus > 0


def _actors(ray, files, count: int, use_gpu: bool, threads: int | None) -> list:
    """``count`` ShardWorker actors (restarted by Ray when they die) and, last, the
    ModelFiles actor they load the model from."""
    name = f"gicnet-model-{uuid.uuid4().hex}"
    store = ray.remote(num_cpus=0)(ModelFiles).options(name=name).remote(files)
    remote = ray.remote(num_cpus=1, num_gpus=1 if use_gpu else 0, max_restarts=MAX_RETRIES,
                        max_task_retries=MAX_RETRIES)(ShardWorker)
    device = "cuda" if use_gpu else "cpu"
    threads = threads if threads is not None or use_gpu else 1
    return [remote.remote(name, device, threads) for _ in range(count)] + [store]


def _width(bounds: tuple[int, int]) -> int:
    return bounds[1] - bounds[0]


def _run_shards(ray, actors, todo, ledger, pos, vel, paths, shard_args, done, interrupted,
                on_shard) -> None:
    """Keep every actor fed with shards until all of ``todo`` are written."""
    queue = list(todo)
    pending: dict = {}

    def submit(actor) -> None:
        k = queue.pop(0)
        first, stop = ledger.bounds[k]
        ref = actor.unroll.remote(k, first, pos[first:stop], vel[first:stop], *shard_args)
        pending[ref] = (actor, k)

    try:
        for _ in range(QUEUED_PER_ACTOR):
            for actor in actors:
                if queue:
                    submit(actor)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
            if interrupted is not None and interrupted():
                raise Interrupted(f"interrupted after {len(ledger.done)} of "
                                  f"{len(ledger.bounds)} shards, recorded in {ledger.path}: "
                                  "run the same command with --resume to continue")
            for ref in ready:
                actor, k = pending.pop(ref)
                try:
                    index, results, seconds = ray.get(ref)
                except Exception as err:  # noqa: BLE001  (RayTaskError, RayActorError)
                    raise GicnetError(f"shard {k} (trajectories {ledger.bounds[k][0]}-"
                                      f"{ledger.bounds[k][1] - 1}) failed on Ray: "
                                      f"{task_failure(err)}") from None
                _write_shard(ledger, index, results, paths)
                if done is not None:
                    done(index)
                if on_shard is not None:
                    on_shard(ShardDone(index, actor, actors, seconds))
                if queue:
                    submit(actor)
    finally:  # shards still queued are dropped first, so that Ray does not retry them
        for ref in pending:
            ray.cancel(ref)
        for actor in actors:
            ray.kill(actor)


def _write_shard(ledger: ShardLedger, index: int, results, paths) -> None:
    """Write shard ``index``'s files, each atomically, then record it in the ledger."""
    first, _ = ledger.bounds[index]
    written = []
    for offset, (data, n_frames, info) in enumerate(results):
        path = paths[first + offset]
        try:
            with atomic_target(path) as tmp:
                tmp.write_bytes(data)
        except OSError as err:
            raise InputError(f"cannot write {path}: {err.strerror or err}") from None
        written.append((path, summary(info, n_frames)))
    ledger.record(index, written)


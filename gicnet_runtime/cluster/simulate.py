"""``gicnet simulate --ray``: reference MD trajectories as Ray tasks.

One task per seed runs :func:`gicnet_runtime.reference.simulate.run_trajectory` on one
CPU with one engine thread (so a trajectory is bitwise the one a local run gives for
the same seed) and returns it; the driver writes each trajectory, atomically, as soon as
its task finishes, into the same file name a local run uses.  Files that already exist
are kept and their seeds not run again, as locally, so an interrupted run resumes.  A
task whose worker dies (killed, out of memory, a lost node) is run again by Ray, up to
``MAX_RETRIES`` times; an error inside the simulation itself (an unknown element, a
failed SCF) is not retried, since the same seed fails the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gicnet_runtime.cluster.connect import connect, task_failure
from gicnet_runtime.errors import GicnetError
from gicnet_runtime.reference.simulate import (
    SimulationSettings,
    trajectory_file_name,
    validate,
)

#: Re-runs of a task whose worker died.
MAX_RETRIES = 3
#: Seconds between checks for finished tasks.
POLL_S = 0.5


def simulate_seed(settings: SimulationSettings, seed: int):
    """One reference trajectory on one engine thread (the body of a Ray task)."""
    from gicnet_runtime.reference.engines import single_threaded
    from gicnet_runtime.reference.simulate import run_trajectory

    single_threaded()
    return run_trajectory(settings, seed)


def simulate_on_ray(settings: SimulationSettings, seeds: list[int], out_dir: str | Path,
                    fmt: str = "h5md", *, address: str | None = None,
                    progress: Callable[[int], None] | None = None,
                    on_written: Callable[[Path], None] | None = None) -> list[Path]:
    """Run one trajectory per seed on Ray and write each to
    ``out_dir/<molecule>_seed<seed>.<ext>`` as it finishes (see the module docstring).

    Args:
        settings, seeds, out_dir, fmt: as for
            :func:`gicnet_runtime.reference.simulate.simulate_to_files`.
        address: the Ray cluster (:func:`gicnet_runtime.cluster.connect.connect`).
        progress: called with the files already there (not run again), then with 1 per
            trajectory written.
        on_written: called with each file once written (tests use it to kill a worker).

    Returns:
        The files, in seed order.
    """
    from gicnet_runtime.io.formats import write_trajectory

    validate(settings)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / trajectory_file_name(settings.molecule, seed, fmt) for seed in seeds]
    todo = [(seed, path) for seed, path in zip(seeds, paths) if not path.exists()]
    if progress is not None and len(todo) < len(paths):
        progress(len(paths) - len(todo))
    if not todo:
        return paths
    with connect(address) as ray:
        task = ray.remote(num_cpus=1, max_retries=MAX_RETRIES,
                          retry_exceptions=False)(simulate_seed)
        shared = ray.put(settings)
        pending = {task.remote(shared, seed): (seed, path) for seed, path in todo}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
                for ref in ready:
                    seed, path = pending.pop(ref)
                    try:
                        trajectory = ray.get(ref)
                    except Exception as err:  # noqa: BLE001  (RayTaskError, WorkerCrashedError)
                        raise GicnetError(f"seed {seed} failed on Ray: {task_failure(err)}"
                                          ) from None
                    write_trajectory(trajectory, path, fmt)
                    if progress is not None:
                        progress(1)
                    if on_written is not None:
                        on_written(path)
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
    return paths

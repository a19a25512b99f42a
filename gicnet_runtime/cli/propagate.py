"""`gicnet propagate`: long trajectories unrolled segment by segment."""

from __future__ import annotations

import click

from gicnet_runtime.cli.estimate import (
    MAX_FRAMES,
    MAX_SEGMENTS,
    check_disk,
    check_propagate,
    limit_option,
)
from gicnet_runtime.cli.options import (
    FORMAT_HINT,
    OUT_HELP,
    choose_frames,
    format_option,
    frame_options,
    ray_option,
    runtime_options,
    unroll_options,
)
from gicnet_runtime.cli.sanity import unphysical_option, warn_runs
from gicnet_runtime.cli.types import COUNT, DURATION_FS, NON_NEGATIVE, POSITIVE, STEP_FS


@click.command()
@runtime_options
@frame_options
@click.option("--duration-fs", type=DURATION_FS, required=True, help="Trajectory length, fs.")
@click.option("--dt-fs", type=STEP_FS, default=0.5, show_default=True,
              help="Spacing of the output frames, fs (any value, independent of tc).")
@click.option("--energy-threshold-eV", "energy_threshold_eV", type=POSITIVE, default=None,
              help="Largest total-energy error of a segment before stepping back and trying "
                   "the next ensemble member, eV.  [default: 1 kcal/mol = 0.0434 eV]")
@unroll_options
@click.option("--out", required=True, type=click.Path(dir_okay=False), help=OUT_HELP)
@format_option
@click.option("--resume", is_flag=True,
              help="Continue an interrupted run from its checkpoint OUT.resume.npz and frame "
                   "spool OUT.resume.frames.")
@click.option("--checkpoint-every-s", type=NON_NEGATIVE, default=60.0,
              show_default=True, help="Seconds between checkpoints (OUT.resume.npz, deleted "
                                      "with the spool once the output is written).")
@limit_option("--max-frames", MAX_FRAMES, "frames (trajectories x frames, written)")
@limit_option("--max-segments", MAX_SEGMENTS, "segments (trajectories x segments)")
@unphysical_option
@ray_option
@click.option("--ray-workers", type=COUNT, default=None,
              help="With --ray: actors, each holding the model once.  [default: one per GPU "
                   "of the cluster, else one per CPU]")
@click.option("--shard-size", type=COUNT, default=None,
              help="With --ray: trajectories per shard, the unit of work, of writing and of "
                   "--resume.  [default: two shards per actor, at most 64 MB of frames each]")
def propagate(models, init, velocities, device, threads, frames, all_frames, duration_fs,
              dt_fs, energy_threshold_eV, restore_energy, segment_fs, out, fmt, resume,
              checkpoint_every_s, max_frames, max_segments, unphysical, ray_address,
              ray_workers, shard_size):
    """Unroll long trajectories segment by segment, all initial conditions in one batch.

    Frames stream to a spool file beside the output while the run goes on (memory and
    checkpoints stay bounded), and each trajectory is written when the run is done.
    With --ray, the initial conditions are cut into shards unrolled by Ray actors, and
    each shard's trajectories are written as soon as it is done (--resume skips the
    shards written; the ledger OUT.shards.jsonl says which)."""
    import time

    from gicnet_runtime.cli.signals import graceful_stop
    from gicnet_runtime.cluster.shards import ledger_path
    from gicnet_runtime.core.model import load_model
    from gicnet_runtime.errors import GicnetError
    from gicnet_runtime.io.formats import check_writable, format_of
    from gicnet_runtime.io.initial import DEFAULT_INIT_NAME, initial_conditions_for
    from gicnet_runtime.io.outputs import numbered_paths
    from gicnet_runtime.io.plan import OutputPlan
    from gicnet_runtime.progress import progress
    from gicnet_runtime.unroll.checkpoint import checkpoint_path
    from gicnet_runtime.unroll.to_files import propagate_to_files

    format_of(out, fmt, hint=FORMAT_HINT)
    check_writable(out, fmt)
    model = load_model(list(models) or None, device=device, threads=threads)
    conditions = initial_conditions_for(model.description, init, velocities,
                                        model.paths[0].parent)
    conditions, _ = choose_frames(conditions, frames, all_frames, init or DEFAULT_INIT_NAME)
    n_frames = check_propagate(model, len(conditions), duration_fs, dt_fs, segment_fs,
                               max_frames, max_segments)
    check_disk(out, n_frames, model.description.n_atoms)
    total = len(conditions) * model.segment_count(duration_fs, dt_fs, segment_fs)

    if ray_address is None and (ray_workers or shard_size):
        raise GicnetError("--ray-workers and --shard-size need --ray")
    resumable = ("shard ledger", ledger_path(out)) if ray_address is not None else (
        "checkpoint", checkpoint_path(out))
    if resume and not resumable[1].is_file():
        click.echo(f"gicnet: no {resumable[0]} {resumable[1]}; starting from the beginning",
                   err=True)
    settings = {"fmt": fmt, "energy_threshold_eV": energy_threshold_eV,
                "restore_energy": restore_energy, "segment_fs": segment_fs,
                "unphysical": unphysical, "resume": resume}
    start = time.perf_counter()
    with OutputPlan(inputs=[init, velocities, *model.paths], command="propagate") as plan, \
            graceful_stop() as stop, progress(total, "propagate", "segment") as bar:
        for path in numbered_paths(out, len(conditions)):
            plan.add(path, "trajectory", fmt)
        if ray_address is not None:  # each shard's files appear as it finishes
            from gicnet_runtime.cluster.propagate import propagate_on_ray

            written = propagate_on_ray(
                model, conditions.positions, conditions.velocities, duration_fs, dt_fs, out,
                address=ray_address, workers=ray_workers, shard_size=shard_size,
                device=device, threads=threads, progress=bar.update, interrupted=stop,
                **settings)
        else:
            written = propagate_to_files(
                model, conditions.positions, conditions.velocities, duration_fs, dt_fs, out,
                progress=bar.update, checkpoint_every_s=checkpoint_every_s, interrupted=stop,
                stage=plan.staged, commit=plan.commit, **settings)
    provider = f"Ray ({ray_address})" if ray_address is not None else model.providers[0]
    _report(written, time.perf_counter() - start, provider, dt_fs)
    warn_runs(run.info for _, run in written)
    failed = [run.info["failure"] for _, run in written if "failure" in run.info]
    for message in failed:
        click.echo(f"gicnet: warning: {message}", err=True)
    if failed:
        raise GicnetError(f"{len(failed)} of {len(written)} trajectories stopped early; "
                          "their frames up to the failure were written")


def _report(written, elapsed_s: float, provider: str, dt_fs: float) -> None:
    """One line per file, the unrolling settings and the speed."""
    for path, run in written:
        info = run.info
        click.echo(f"{path}  {run.n_frames} frames to {(run.n_frames - 1) * dt_fs:g} fs, "
                   f"{info['backtracks']} backtracks, "
                   f"{len(info['segments_over_threshold'])} segments over the threshold")
    settings = written[0][1].info
    simulated = sum((run.n_frames - 1) * dt_fs for _, run in written)
    share = settings.get("reversal_share") or 0.0
    click.echo(f"segments of {settings['segment_fs']:g} fs (the model's tc: "
               f"{settings['tc_fs']:g} fs), "
               + (f"time-reversal correction {share:g}, " if share else "")
               + f"energy restoration {'on' if settings['restore_energy'] else 'off'}")
    click.echo(f"{len(written)} trajectories, {simulated / 1000:g} ps in all, in "
               f"{elapsed_s:.1f} s ({simulated / max(elapsed_s, 1e-9):,.0f} fs/s) on {provider}")

"""`gicnet predict`: frames within one segment, one model call."""

from __future__ import annotations

import click

from gicnet_runtime.cli.estimate import check_predict, memory_option
from gicnet_runtime.cli.options import (
    FORMAT_HINT,
    OUT_HELP,
    choose_frames,
    format_option,
    frame_options,
    runtime_options,
)
from gicnet_runtime.cli.sanity import check_prediction, unphysical_option


@click.command()
@runtime_options
@frame_options
@click.option("--times", required=True,
              help="Times within the segment [0, tc], fs: start:stop:step (stop included) or "
                   "t1,t2,...; written in increasing order, without repeats.")
@click.option("--ensemble", type=click.Choice(["mean", "select"]), default="mean",
              show_default=True,
              help="An ensemble's answer: the mean of its members (more accurate; the spread "
                   "is printed), or per start the member with the smallest energy error.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help=OUT_HELP)
@format_option
@memory_option("the predicted frames (starts x times)")
@unphysical_option
def predict(models, init, velocities, device, threads, frames, all_frames, times, ensemble,
            out, fmt, max_memory_gb, unphysical):
    """Predict frames within one segment from each initial condition (one model call)."""
    import numpy as np

    from gicnet_runtime.core.model import load_model
    from gicnet_runtime.core.timegrid import parse_times
    from gicnet_runtime.io.formats import check_writable, format_of, write_trajectory
    from gicnet_runtime.io.initial import DEFAULT_INIT_NAME, initial_conditions_for
    from gicnet_runtime.io.outputs import numbered_paths, prediction_trajectories
    from gicnet_runtime.io.plan import OutputPlan

    format_of(out, fmt, hint=FORMAT_HINT)
    check_writable(out, fmt)
    times_fs = np.unique(parse_times(times))
    model = load_model(list(models) or None, device=device, threads=threads)
    conditions = initial_conditions_for(model.description, init, velocities,
                                        model.paths[0].parent)
    conditions, index = choose_frames(conditions, frames, all_frames, init or DEFAULT_INIT_NAME)
    check_predict(model, len(conditions), times_fs.size, max_memory_gb)
    with OutputPlan(inputs=[init, velocities, *model.paths], command="predict") as plan:
        paths = [plan.add(p, "trajectory", fmt) for p in numbered_paths(out, len(conditions))]
        result = model.predict(conditions.positions, conditions.velocities, times_fs,
                               ensemble=ensemble, check=False)
        check_prediction(model, conditions, result, times_fs, index, unphysical)
        trajectories = prediction_trajectories(
            result.positions, result.velocities, result.potential_energy, times_fs,
            model.description, {"engine": "gicnet", "models": [p.name for p in model.paths]},
            result.member)
        for traj, path in zip(trajectories, paths):
            write_trajectory(traj, plan.staged(path), fmt or format_of(path))
        plan.commit()
    for b, path in enumerate(paths):
        spread = ("" if result.spread_A is None else
                  f", members' spread up to {result.spread_A[b].max():.4f} A")
        click.echo(f"{path}  {times_fs.size} frames, {times_fs[0]:g}-{times_fs[-1]:g} fs, "
                   f"from --init frame {index[b]}{spread}")

"""`gicnet predict`: frames within one segment, one model call."""

from __future__ import annotations

import click

from gicnet_runtime.cli.options import (
    FORMAT_HINT,
    OUT_HELP,
    choose_frames,
    format_option,
    frame_options,
    runtime_options,
)


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
def predict(models, init, velocities, device, threads, frames, all_frames, times, ensemble,
            out, fmt):
    """Predict frames within one segment from each initial condition (one model call)."""
    import numpy as np

    from gicnet_runtime.core.model import load_model
    from gicnet_runtime.core.timegrid import parse_times
    from gicnet_runtime.io.formats import check_writable, format_of
    from gicnet_runtime.io.initial import DEFAULT_INIT_NAME, initial_conditions_for
    from gicnet_runtime.io.outputs import prediction_trajectories, write_trajectories

    format_of(out, fmt, hint=FORMAT_HINT)
    check_writable(out, fmt)
    times_fs = np.unique(parse_times(times))
    model = load_model(list(models) or None, device=device, threads=threads)
    conditions = initial_conditions_for(model.description, init, velocities,
                                        model.paths[0].parent)
    conditions, index = choose_frames(conditions, frames, all_frames, init or DEFAULT_INIT_NAME)
    result = model.predict(conditions.positions, conditions.velocities, times_fs,
                           ensemble=ensemble)
    trajectories = prediction_trajectories(
        result.positions, result.velocities, result.potential_energy, times_fs,
        model.description, {"engine": "gicnet", "models": [p.name for p in model.paths]},
        result.member)
    for b, path in enumerate(write_trajectories(trajectories, out, fmt)):
        spread = ("" if result.spread_A is None else
                  f", members' spread up to {result.spread_A[b].max():.4f} A")
        click.echo(f"{path}  {times_fs.size} frames, {times_fs[0]:g}-{times_fs[-1]:g} fs, "
                   f"from --init frame {index[b]}{spread}")

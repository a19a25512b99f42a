"""`gicnet explain`: integrated-gradients attributions."""

from __future__ import annotations

import click

from gicnet_runtime.cli.types import COUNT, INDEX, MAX_EXPLAIN_STEPS, TIME_FS


@click.command()
@click.option("--model", "models", multiple=True, type=click.Path(),
              help="Model .onnx file or folder (ensemble).  [default: the shipped model]")
@click.option("--init", required=True, type=click.Path(dir_okay=False),
              help="Initial condition: extended XYZ with velocities.")
@click.option("--frame", type=INDEX, default=0, show_default=True,
              help="Which frame of --init to explain.")
@click.option("--frames", default=None, metavar="SPEC",
              help="Explain many frames of --init and aggregate: I,J,... or START:STOP:STEP "
                   "(0-based, STOP included); per input and per kind (bonds, angles, "
                   "dihedrals, their rates) the mean over frames and the spread over frames "
                   "and over ensemble members, and every frame's completeness check.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Write the attributions (per frame, aggregated with --frames) as JSON.")
@click.option("--coordinate", required=True,
              help='Explained coordinate, 1-based atoms: "bond I J", "angle I J K" or '
                   '"dihedral I J K L".')
@click.option("--time-fs", type=TIME_FS, required=True, help="Time within the segment, fs.")
@click.option("--baseline", type=click.Path(dir_okay=False), default=None,
              help="Baseline structure (first frame; velocities if it has them, else zero).  "
                   "[default: the explained structure at rest]")
@click.option("--steps", type=click.IntRange(1, MAX_EXPLAIN_STEPS), default=32,
              show_default=True,
              help="Integration points along the path.")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Bar chart of the largest attributions (.png).")
@click.option("--top", type=COUNT, default=20, show_default=True, help="Rows shown.")
def explain(models, init, frame, frames, json_out, coordinate, time_fs, baseline, steps, out,
            top):
    """Integrated-gradients attribution of one internal coordinate at time t to every input
    internal coordinate and rate (finite differences through the ONNX runtime)."""
    from gicnet_runtime.analysis import attributions as agg
    from gicnet_runtime.analysis import explain as xp
    from gicnet_runtime.atomic import write_json
    from gicnet_runtime.io.initial import parse_frames
    from gicnet_runtime.analysis.plots import plot_attributions
    from gicnet_runtime.core.internal import Coordinate
    from gicnet_runtime.core.model import load_model
    from gicnet_runtime.errors import InputError
    from gicnet_runtime.io.initial import initial_conditions_for
    from gicnet_runtime.io.plan import OutputPlan

    model = load_model(list(models) or None, device="cpu")
    conditions = initial_conditions_for(model.description, init, None, model.paths[0].parent)
    if not 0 <= frame < len(conditions):
        raise InputError(f"--frame {frame} is outside the {len(conditions)} frames of {init}")
    if frames is not None and frame != 0:
        raise InputError("give --frame or --frames, not both")
    chosen = [frame] if frames is None else list(parse_frames(frames, len(conditions)))
    target = Coordinate.parse(coordinate, model.description.n_atoms)
    with OutputPlan(inputs=[init, baseline, *model.paths], command="explain") as plan:
        plot = plan.add(out, "plot") if out else None
        record = plan.add(json_out, "json") if json_out else None
        base = (xp.read_structure(baseline, model.description.n_atoms) if baseline
                else (None, None))
        results = [xp.integrated_gradients(model, conditions.positions[k],
                                           conditions.velocities[k], target, time_fs, *base,
                                           steps=steps) for k in chosen]
        summary = agg.summarize(results)
        title = f"{results[0].coordinate.label()} at {time_fs:g} fs"
        if plot is not None:
            plot_attributions(plan.staged(plot), summary.labels, summary.mean,
                              title if frames is None else f"{title}, mean of {len(chosen)} "
                              "frames", top)
        if record is not None:
            write_json(dict(summary.to_json(), frames_of_init=[int(k) for k in chosen]),
                       plan.staged(record))
        plan.commit()
    lines = (xp.format_table(results[0], top) if frames is None
             else agg.format_summary(summary, top))
    for line in lines:
        click.echo(line)
    for path in (out, json_out):
        if path:
            click.echo(path)

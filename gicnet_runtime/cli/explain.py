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
def explain(models, init, frame, coordinate, time_fs, baseline, steps, out, top):
    """Integrated-gradients attribution of one internal coordinate at time t to every input
    internal coordinate and rate (finite differences through the ONNX runtime)."""
    from gicnet_runtime.analysis import explain as xp
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
    with OutputPlan(inputs=[init, baseline, *model.paths], command="explain") as plan:
        plot = plan.add(out, "plot") if out else None
        base = (xp.read_structure(baseline, model.description.n_atoms) if baseline
                else (None, None))
        result = xp.integrated_gradients(
            model, conditions.positions[frame], conditions.velocities[frame],
            Coordinate.parse(coordinate, model.description.n_atoms), time_fs, *base,
            steps=steps)
        if plot is not None:
            plot_attributions(plan.staged(plot), result.labels, result.values,
                              f"{result.coordinate.label()} at {time_fs:g} fs", top)
        plan.commit()
    for line in xp.format_table(result, top):
        click.echo(line)
    if out:
        click.echo(out)

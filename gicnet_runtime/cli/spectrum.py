"""`gicnet spectrum`: vibrational power spectra."""

from __future__ import annotations

import click

from gicnet_runtime.cli.types import DURATION_FS, POSITIVE, STEP_FS


@click.command()
@click.argument("trajectories", nargs=-1, required=True, type=click.Path())
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Spectrum plot (.png), written atomically.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="Also write wavenumber_cm,intensity[,reference_intensity] here.")
@click.option("--reference", "references", multiple=True, type=click.Path(),
              help="Reference trajectory file, folder or quoted glob; repeatable.  Overlaid, "
                   "with peak shifts and similarity scores.")
@click.option("--mass-weighted/--unweighted", default=True, show_default=True,
              help="Weight each atom's velocity autocorrelation by its mass.")
@click.option("--max-lag-fs", type=DURATION_FS, default=None,
              help="Longest autocorrelation lag, fs (sets the resolution).  "
                   "[default: the shortest trajectory]")
@click.option("--window", default="hann", show_default=True,
              help="Taper of the autocorrelation: hann, hamming, blackman, bartlett or none.")
@click.option("--max-wavenumber-cm", type=POSITIVE, default=4000.0, show_default=True)
@click.option("--frame-spacing-fs", type=STEP_FS, default=None,
              help="Frame spacing for files without time information, fs.")
def spectrum(trajectories, out, csv_path, references, mass_weighted, max_lag_fs, window,
             max_wavenumber_cm, frame_spacing_fs):
    """Vibrational power spectrum (cm-1) of TRAJECTORIES from the velocity autocorrelation."""
    from gicnet_runtime.analysis import spectrum as sp
    from gicnet_runtime.analysis.plots import plot_spectrum
    from gicnet_runtime.io.formats import read_trajectories
    from gicnet_runtime.io.paths import trajectory_paths
    from gicnet_runtime.io.plan import OutputPlan

    def compute(paths):
        trajs = read_trajectories(paths, frame_spacing_fs)
        return sp.power_spectrum(trajs, mass_weighted=mass_weighted, max_lag_fs=max_lag_fs,
                                 window=window, max_wavenumber_cm=max_wavenumber_cm)

    inputs = trajectory_paths(trajectories)
    reference_inputs = trajectory_paths(references) if references else []
    with OutputPlan(inputs=[*inputs, *reference_inputs], command="spectrum") as plan:
        plot = plan.add(out, "plot")
        table = plan.add(csv_path, "table") if csv_path else None
        result = compute(inputs)
        reference = compute(reference_inputs) if references else None
        peaks = sp.find_peaks(result)
        plot_spectrum(plan.staged(plot), result, peaks, reference)
        if table is not None:
            sp.write_csv(plan.staged(table), result, reference)
        plan.commit()
    click.echo(f"{out}  {result.n_trajectories} trajectories, resolution "
               f"{result.resolution_cm:.1f} cm-1")
    click.echo("peak_cm  height")
    for peak in peaks:
        click.echo(f"{peak.wavenumber_cm:7.1f}  {peak.height:.3e}")
    if reference is not None:
        for row in sp.match_peaks(peaks, sp.find_peaks(reference)):
            click.echo(f"reference band {row['reference_cm']:7.1f} cm-1: nearest peak "
                       f"{row['predicted_cm']:7.1f} ({row['shift_cm']:+.1f})")
        scores = sp.similarity(result, reference)
        click.echo(f"similarity: overlap {scores['overlap']:.3f}  pearson {scores['pearson']:.3f}")

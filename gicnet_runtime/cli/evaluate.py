"""`gicnet evaluate`: accuracy against reference trajectories."""

from __future__ import annotations

import click

from gicnet_runtime.analysis.evaluate import EvaluationSettings
from gicnet_runtime.cli.estimate import (
    MAX_ENGINE_CALLS,
    MAX_SEGMENTS,
    check_evaluate,
    limit_option,
    memory_option,
)
from gicnet_runtime.cli.options import unroll_options
from gicnet_runtime.cli.sanity import unphysical_option, warn_unstable
from gicnet_runtime.cli.types import COUNT, DURATION_FS, STEP_FS, THREADS

#: The option defaults of the measured settings are EvaluationSettings' own.
_DEFAULT = EvaluationSettings()


@click.command()
@click.option("--model", "models", multiple=True, type=click.Path(),
              help="Model .onnx file or folder (ensemble); repeatable.  [default: the shipped "
                   "model]")
@click.option("--reference", "references", multiple=True, required=True, type=click.Path(),
              help="Reference trajectory file, folder or quoted glob; repeatable.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for report.json and the PNG plots.")
@click.option("--engine", type=click.Choice(["gfn2", "gfn1", "ani1x"]), default=_DEFAULT.engine,
              help="Recompute the total energy of long-trajectory frames with this engine.")
@click.option("--starts-per-reference", type=COUNT, default=_DEFAULT.starts_per_reference,
              show_default=True, help="Segment-error initial conditions per reference trajectory.")
@click.option("--long-starts", type=COUNT, default=_DEFAULT.long_starts, show_default=True,
              help="Long trajectories (from frame 0 of each reference in turn).")
@click.option("--long-duration-fs", type=DURATION_FS, default=_DEFAULT.long_duration_fs,
              show_default=True,
              help="Length of each long trajectory, fs (50000 for the full measurement).")
@click.option("--long-dt-fs", type=STEP_FS, default=_DEFAULT.long_dt_fs, show_default=True,
              help="Frame spacing of the long trajectories, fs.")
@click.option("--energy-every", type=COUNT, default=_DEFAULT.energy_every, show_default=True,
              help="Recompute the energy on every this many long-trajectory frames.")
@click.option("--workers", type=THREADS, default=_DEFAULT.workers, show_default=True,
              help="Processes for the reference-engine calls.")
@click.option("--max-lag-fs", type=DURATION_FS, default=_DEFAULT.max_lag_fs, show_default=True,
              help="Longest autocorrelation lag of the spectra, fs (capped by the lengths).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True)
@click.option("--threads", type=THREADS, default=None, help="onnxruntime threads.")
@unroll_options
@memory_option("the long trajectories' frames")
@limit_option("--max-segments", MAX_SEGMENTS, "segments (long trajectories x segments)")
@limit_option("--max-engine-calls", MAX_ENGINE_CALLS, "reference-engine calls (--engine)")
@unphysical_option
def evaluate(models, references, out_dir, engine, starts_per_reference, long_starts,
             long_duration_fs, long_dt_fs, energy_every, workers, max_lag_fs, device, threads,
             restore_energy, segment_fs, max_memory_gb, max_segments, max_engine_calls,
             unphysical):
    """Accuracy against reference trajectories: errors within the segment, long-time
    stability and energy conservation, and the vibrational spectrum."""
    from gicnet_runtime.analysis.report import run_evaluation
    from gicnet_runtime.core.model import load_model
    from gicnet_runtime.io.formats import read_trajectories
    from gicnet_runtime.io.paths import trajectory_paths
    from gicnet_runtime.io.plan import OutputPlan
    from gicnet_runtime.progress import StageProgress

    settings = EvaluationSettings(
        starts_per_reference=starts_per_reference, long_starts=long_starts,
        long_duration_fs=long_duration_fs, long_dt_fs=long_dt_fs, engine=engine,
        energy_every=energy_every, workers=workers, max_lag_fs=max_lag_fs,
        restore_energy=restore_energy, segment_fs=segment_fs, unphysical=unphysical)
    model = load_model(list(models) or None, device=device, threads=threads)
    check_evaluate(model, settings, max_memory_gb, max_segments, max_engine_calls)
    inputs = trajectory_paths(references)
    with OutputPlan(inputs=[*inputs, *model.paths], command="evaluate") as plan, \
            StageProgress() as stages:
        folder = plan.add_folder(out_dir)
        refs = read_trajectories(inputs)
        report = run_evaluation(model, refs, settings, plan.staged_folder(folder),
                                progress=stages)
        plan.commit()
    seg, stab = report["segment_errors"], report["stability"]
    click.echo(f"at tc: bond {seg['bond_rmse_A'][-1]:.4f} A, angle "
               f"{seg['angle_rmse_deg'][-1]:.2f} deg, dihedral {seg['dihedral_rmse_deg'][-1]:.2f} "
               f"deg, RMSD {seg['cartesian_rmsd_A'][-1]:.4f} A ({seg['n_starts']} starts)")
    click.echo(f"stable: {stab['stable']} of {stab['count']} x {long_duration_fs:g} fs")
    warn_unstable(stab["trajectories"])
    if "energy" in report and report["energy"]["rms_deviation_kcal_mol"]:
        energy = report["energy"]
        click.echo(f"total energy ({engine}): RMS deviation "
                   f"{energy['rms_deviation_kcal_mol']['mean']:.3f} kcal/mol, drift "
                   f"{energy['drift_kcal_mol_per_ps']['mean']:+.3f} kcal/mol/ps (mean)")
    spec = report["spectrum"]
    if "overlap" in spec:
        shift = spec["max_abs_shift_cm"]
        click.echo(f"spectrum: overlap {spec['overlap']:.3f}, pearson {spec['pearson']:.3f}, "
                   f"largest major-band shift "
                   f"{'n/a' if shift is None else format(shift, '.1f')} cm-1")
    click.echo(f"{out_dir}/report.json")

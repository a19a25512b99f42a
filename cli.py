"""The `gicnet` command line: a thin click group.

Each command parses its options, calls the library and reports.  Library
modules are imported inside the commands so that `gicnet --help` and the
runtime commands never import torch.  Errors the user can fix
(:class:`gicnet_runtime.GicnetError`) are printed as one line on stderr with exit
code 1, never as a traceback.
"""

from __future__ import annotations

import sys

import click

from gicnet_runtime.errors import GicnetError


class _Group(click.Group):
    """A click group that turns the project's own errors into one line on stderr."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except GicnetError as err:
            click.echo(f"gicnet: error: {err}", err=True)
            sys.exit(1)
        except click.UsageError as err:
            click.echo(f"gicnet: error: {' '.join(err.format_message().split())}", err=True)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("gicnet: interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gicnet")
def main() -> None:
    """gicnet: 4D-spacetime atomistic AI models of molecular dynamics.

    Units everywhere: positions Å, time fs, velocities Å/fs, masses amu, energies eV.
    """


# --- commands are added below, one function each ---------------------------


def _runtime_options(command):
    """--model, --init, --velocities, --device and --threads (predict, propagate)."""
    options = [
        click.option("--model", "models", multiple=True, type=click.Path(),
                     help="Model .onnx file, or a folder whose .onnx files form an ensemble; "
                          "repeat for an ensemble.  [default: the shipped exported/ethanol]"),
        click.option("--init", type=click.Path(dir_okay=False),
                     help="Initial conditions: extended XYZ with velocities (every frame is "
                          "one), or MLatom's XYZ with --velocities.  [default: initial.extxyz "
                          "next to the model]"),
        click.option("--velocities", type=click.Path(dir_okay=False),
                     help="MLatom velocity file (Å/fs) for an XYZ --init."),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
                     show_default=True, help="auto: CUDA when it works, else CPU."),
        click.option("--threads", type=click.IntRange(min=1), default=None,
                     help="onnxruntime threads.  [default: onnxruntime's choice]"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


_OUT_HELP = ("Output file: .xyz/.extxyz (ASE-readable, velocities included), .h5/.h5md or "
             ".npz, written atomically; several initial conditions give OUT_000.ext, "
             "OUT_001.ext, ...")


@main.command()
@_runtime_options
@click.option("--times", required=True,
              help="Times within the segment [0, tc], fs: start:stop:step (stop included) or "
                   "t1,t2,...; written in increasing order, without repeats.")
@click.option("--ensemble", type=click.Choice(["mean", "select"]), default="mean",
              show_default=True,
              help="An ensemble's answer: the mean of its members (more accurate; the spread "
                   "is printed), or per start the member with the smallest energy error.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help=_OUT_HELP)
def predict(models, init, velocities, device, threads, times, ensemble, out):
    """Predict frames within one segment from each initial condition (one model call)."""
    import numpy as np

    from gicnet_runtime.initial import initial_conditions_for
    from gicnet_runtime.model import load_model
    from gicnet_runtime.outputs import prediction_trajectories, write_trajectories
    from gicnet_runtime.timegrid import parse_times
    from gicnet_runtime.trajio import check_writable

    check_writable(out)
    model = load_model(list(models) or None, device=device, threads=threads)
    conditions = initial_conditions_for(model.description, init, velocities,
                                        model.paths[0].parent)
    times_fs = np.unique(parse_times(times))
    result = model.predict(conditions.positions, conditions.velocities, times_fs,
                           ensemble=ensemble)
    trajectories = prediction_trajectories(
        result.positions, result.velocities, result.potential_energy, times_fs,
        model.description, {"engine": "gicnet", "models": [p.name for p in model.paths]},
        result.member)
    for b, path in enumerate(write_trajectories(trajectories, out)):
        spread = ("" if result.spread_A is None else
                  f", members' spread up to {result.spread_A[b].max():.4f} A")
        click.echo(f"{path}  {times_fs.size} frames, {times_fs[0]:g}-{times_fs[-1]:g} fs{spread}")


def _unroll_options(command):
    """How long trajectories are unrolled (propagate, evaluate)."""
    options = [
        click.option("--restore-energy/--no-restore-energy", default=None,
                     help="Start every segment with the trajectory's initial total energy "
                          "(model potential + kinetic) by scaling the stretch-and-bend "
                          "velocities.  [default: on for models with energy]"),
        click.option("--segment-fs", type=float, default=None,
                     help="Length of the unrolled segments, fs, at most the model's tc "
                          "(shorter: more accurate, more network calls).  [default: the "
                          "model's unroll_segment_fs, else tc]"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@main.command()
@_runtime_options
@click.option("--duration-fs", type=float, required=True, help="Trajectory length, fs.")
@click.option("--dt-fs", type=float, default=0.5, show_default=True,
              help="Spacing of the output frames, fs (any value, independent of tc).")
@click.option("--energy-threshold-eV", "energy_threshold_eV", type=float, default=None,
              help="Largest total-energy error of a segment before stepping back and trying "
                   "the next ensemble member, eV.  [default: 1 kcal/mol = 0.0434 eV]")
@_unroll_options
@click.option("--out", required=True, type=click.Path(dir_okay=False), help=_OUT_HELP)
@click.option("--resume", is_flag=True,
              help="Continue an interrupted run from its checkpoint OUT.resume.npz.")
@click.option("--checkpoint-every-s", type=click.FloatRange(min=0), default=60.0,
              show_default=True, help="Seconds between checkpoints (OUT.resume.npz, deleted "
                                      "once the output is written).")
def propagate(models, init, velocities, device, threads, duration_fs, dt_fs,
              energy_threshold_eV, restore_energy, segment_fs, out, resume, checkpoint_every_s):
    """Unroll long trajectories segment by segment, all initial conditions in one batch."""
    import time

    from tqdm import tqdm

    from gicnet_runtime.ensemble import ENERGY_THRESHOLD_EV
    from gicnet_runtime.errors import GicnetError
    from gicnet_runtime.initial import initial_conditions_for
    from gicnet_runtime.model import load_model
    from gicnet_runtime.outputs import write_trajectories
    from gicnet_runtime.resume import PropagateCheckpoint, checkpoint_path
    from gicnet_runtime.trajio import check_writable

    check_writable(out)
    model = load_model(list(models) or None, device=device, threads=threads)
    conditions = initial_conditions_for(model.description, init, velocities,
                                        model.paths[0].parent)
    total = len(conditions) * model.segment_count(duration_fs, dt_fs, segment_fs)
    checkpoint = PropagateCheckpoint(checkpoint_path(out), every_s=checkpoint_every_s,
                                     resume=resume)
    if resume and not checkpoint.path.is_file():
        click.echo(f"gicnet: no checkpoint {checkpoint.path}; starting from the beginning",
                   err=True)
    start = time.perf_counter()
    with tqdm(total=total, unit="segment", desc="propagate", disable=None) as bar:
        trajectories = model.propagate(
            conditions.positions, conditions.velocities, duration_fs, dt_fs,
            energy_threshold_eV=ENERGY_THRESHOLD_EV if energy_threshold_eV is None
            else energy_threshold_eV, progress=bar.update, checkpoint=checkpoint,
            restore_energy=restore_energy, segment_fs=segment_fs)
    paths = write_trajectories(trajectories, out)
    checkpoint.remove()
    for path, traj in zip(paths, trajectories):
        click.echo(f"{path}  {traj.n_frames} frames to {traj.time_fs[-1]:g} fs, "
                   f"{traj.info['backtracks']} backtracks, "
                   f"{len(traj.info['segments_over_threshold'])} segments over the threshold")
    elapsed = time.perf_counter() - start
    simulated = sum(t.time_fs[-1] for t in trajectories)
    settings = trajectories[0].info
    click.echo(f"segments of {settings['segment_fs']:g} fs (the model's tc: "
               f"{settings['tc_fs']:g} fs), energy restoration "
               f"{'on' if settings['restore_energy'] else 'off'}")
    click.echo(f"{len(trajectories)} trajectories, {simulated / 1000:g} ps in all, in "
               f"{elapsed:.1f} s ({simulated / max(elapsed, 1e-9):,.0f} fs/s) on "
               f"{model.providers[0]}")
    failed = [t.info["failure"] for t in trajectories if "failure" in t.info]
    for message in failed:
        click.echo(f"gicnet: warning: {message}", err=True)
    if failed:
        raise GicnetError(f"{len(failed)} of {len(trajectories)} trajectories stopped early; "
                          "their frames up to the failure were written")


@main.command()
@click.option("--model", "models", multiple=True, type=click.Path(),
              help="Model .onnx file or folder (ensemble).  [default: the shipped model]")
def info(models):
    """Print a model's description (its gicnet metadata)."""
    import json

    from gicnet_runtime.model import load_model

    model = load_model(list(models) or None, device="cpu")
    desc = model.description
    click.echo(f"members: {', '.join(str(p) for p in model.paths)}")
    click.echo(f"atoms ({desc.n_atoms}): {' '.join(str(z) for z in desc.atomic_numbers)}")
    click.echo(f"masses_amu: {' '.join(f'{m:g}' for m in desc.masses_amu)}")
    click.echo(f"tc_fs: {desc.tc_fs:g}   gate_width_fs: {desc.gate_width_fs:g}   "
               f"has_energy: {desc.has_energy}   frame: {desc.frame}   "
               f"format_version: {desc.format_version}")
    click.echo(f"unroll_segment_fs: {desc.default_segment_fs:g}"
               + ("" if desc.unroll_segment_fs is not None else " (tc; not in the metadata)"))
    click.echo(f"provenance: {json.dumps(desc.provenance, indent=2, sort_keys=True)}")
    for session in model.sessions:
        d = session.description
        per_member = d.member_validation or (d.validation,)
        for k, validation in enumerate(per_member):
            name = session.path.name + (f" member {k}" if d.n_members is not None else "")
            click.echo(f"validation ({name}): {json.dumps(validation, sort_keys=True)}")


@main.command()
@click.argument("molecule")
@click.option("--engine", type=click.Choice(["gfn2", "gfn1", "ani1x"]), default="gfn2",
              show_default=True, help="Reference engine (GFN2-/GFN1-xTB via tblite, ANI-1x).")
@click.option("--temperature-K", "temperature_K", type=float, default=300.0,
              show_default=True, help="Thermostat temperature, K.")
@click.option("--dt-fs", type=float, default=0.5, show_default=True, help="Time step, fs.")
@click.option("--duration-fs", type=float, default=10000.0, show_default=True,
              help="NVE length per trajectory, fs.")
@click.option("--equilibration-fs", type=float, default=2000.0, show_default=True,
              help="Langevin equilibration before NVE, fs.")
@click.option("--friction-per-fs", type=float, default=0.01, show_default=True,
              help="Langevin friction, 1/fs.")
@click.option("--save-every", type=int, default=1, show_default=True,
              help="Save every this many NVE steps.")
@click.option("--n-trajectories", type=int, default=4, show_default=True,
              help="Independent trajectories, seeds SEED, SEED+1, ...")
@click.option("--seed", type=int, default=0, show_default=True, help="First seed.")
@click.option("--workers", type=int, default=2, show_default=True, help="Worker processes.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="trajectories",
              show_default=True, help="Output folder (existing files are kept).")
@click.option("--format", "fmt", type=click.Choice(["h5md", "extxyz"]), default="h5md",
              show_default=True, help="Output format.")
@click.option("--keep-rotation", is_flag=True,
              help="Do not zero the total angular momentum before NVE.")
def simulate(molecule, engine, temperature_K, dt_fs, duration_fs, equilibration_fs,
             friction_per_fs, save_every, n_trajectories, seed, workers, out_dir, fmt,
             keep_rotation):
    """Reference MD of MOLECULE (an ase.build.molecule name or a structure file):
    Langevin equilibration, then velocity-Verlet NVE, one file per seed."""
    from gicnet_runtime.errors import InputError
    from gicnet_runtime.trajio import read_trajectory
    from gicnet_train.simulate import SimulationSettings, simulate_to_files

    if n_trajectories < 1:
        raise InputError(f"--n-trajectories must be >= 1, got {n_trajectories}")
    settings = SimulationSettings(
        molecule=molecule, engine=engine, temperature_K=temperature_K, dt_fs=dt_fs,
        duration_fs=duration_fs, equilibration_fs=equilibration_fs,
        friction_per_fs=friction_per_fs, save_every=save_every,
        zero_angular_momentum=not keep_rotation)
    seeds = list(range(seed, seed + n_trajectories))
    paths = simulate_to_files(settings, seeds, out_dir, fmt=fmt, workers=workers)
    for path in paths:
        info = read_trajectory(path).info
        click.echo(f"{path}  NVE {info['nve_temperature_K']:.1f} K  "
                   f"equilibration {info['equilibration_temperature_K'] or float('nan'):.1f} K")


@main.command()
@click.argument("data", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Run folder (checkpoints, metrics, run.json).")
@click.option("--tc-fs", type=float, default=10.0, show_default=True, help="Segment length, fs.")
@click.option("--epochs", type=int, default=30, show_default=True)
@click.option("--ensemble", "n_members", type=int, default=1, show_default=True,
              help="Members trained with seeds SEED, SEED+1000, ...")
@click.option("--device", type=str, default="auto", show_default=True,
              help="auto, cpu or cuda.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out.")
@click.option("--checkpoint-every-s", type=click.FloatRange(min=0), default=60.0,
              show_default=True, help="Seconds between mid-epoch checkpoints (last.pt).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--hidden", type=str, default="512,256,128", show_default=True,
              help="Hidden layer widths of the MLP.")
@click.option("--head", type=click.Choice(["basis", "time"]), default="basis", show_default=True,
              help="Time dependence: 'basis' (one network pass per start, a Chebyshev basis in "
                   "t) or 'time' (the paper's: t is a network input).")
@click.option("--n-basis", type=click.IntRange(min=1, max=256), default=16, show_default=True,
              help="Basis functions of the basis head.")
@click.option("--patience", type=click.IntRange(min=0), default=5, show_default=True,
              help="Stop after this many epochs without a better validation loss (0 = off).")
@click.option("--batch-size", type=int, default=256, show_default=True,
              help="Initial conditions per step.")
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Peak learning rate.")
@click.option("--stride", type=int, default=2, show_default=True,
              help="Every STRIDE-th frame is an initial condition.")
@click.option("--times-per-pair", type=int, default=0, show_default=True,
              help="Target times drawn per initial condition and step (0 = all).")
@click.option("--energy-epochs", type=int, default=30, show_default=True,
              help="Epochs of the auxiliary energy model.")
@click.option("--energy-weight", type=float, default=0.05, show_default=True,
              help="Weight of the energy-consistency term, 1/eV (0 = off).")
@click.option("--gate-width-fs", type=float, default=2.5, show_default=True,
              help="a in the gate f(t) = 1 - exp(-(t/a)^2), fs.")
@click.option("--ic", "ic_file", type=click.Path(dir_okay=False), default=None,
              help="IC definition (.ic, MLatom format); default: built from the first frame.")
@click.option("--frame-spacing-fs", type=float, default=None,
              help="Frame spacing for files without time information, fs.")
@click.option("--threads", type=int, default=None, help="torch CPU threads.")
@click.option("--time-budget-s", type=float, default=0.0, show_default=True,
              help="Cut the epochs, after the first, to what fits this many seconds per "
                   "member (0 = off).")
@click.option("--members", "only_members", type=str, default=None,
              help="Train only these member indices (comma-separated; empty string: only the "
                   "energy model), e.g. to train members in parallel processes with --resume.")
def train(data, out_dir, tc_fs, epochs, n_members, device, resume, seed, hidden, head, n_basis,
          patience, batch_size, lr, stride, times_per_pair, energy_epochs, energy_weight,
          gate_width_fs, ic_file, frame_spacing_fs, threads, time_budget_s, only_members,
          checkpoint_every_s):
    """Train a GICnet ensemble on trajectory files DATA (H5MD, extxyz, .traj, MLatom npz)."""
    import dataclasses
    import time

    import torch

    from gicnet_runtime.errors import InputError
    from gicnet_runtime.icdef import ICDefinition
    from gicnet_runtime.trajio import read_trajectories
    from gicnet_train.config import EnergyTrainConfig, LossWeights, TrainConfig
    from gicnet_train.fit import fit
    from gicnet_train.model import ModelConfig

    for name, value in (("--epochs", epochs), ("--ensemble", n_members),
                        ("--batch-size", batch_size), ("--stride", stride)):
        if value < 1:
            raise InputError(f"{name} must be >= 1, got {value}")
    if not tc_fs > 0 or not gate_width_fs > 0 or not lr > 0:
        raise InputError("--tc-fs, --gate-width-fs and --lr must be positive")
    try:
        widths = tuple(int(w) for w in hidden.split(","))
    except ValueError:
        raise InputError(f"--hidden must be comma-separated integers, got {hidden!r}") from None
    if threads:
        torch.set_num_threads(threads)
    cfg = TrainConfig(
        model=ModelConfig(hidden=widths, tc_fs=tc_fs, gate_width_fs=gate_width_fs, head=head,
                          n_basis=n_basis),
        weights=dataclasses.replace(LossWeights(), energy=energy_weight),
        energy=dataclasses.replace(EnergyTrainConfig(), epochs=energy_epochs),
        epochs=epochs, batch_size=batch_size, lr=lr, stride=stride,
        times_per_pair=times_per_pair, patience=patience, seed=seed,
        checkpoint_every_s=checkpoint_every_s, time_budget_s=time_budget_s)
    icdef = ICDefinition.read(ic_file) if ic_file else None
    members = None
    if only_members is not None:
        try:
            members = [int(k) for k in only_members.split(",") if k.strip()]
        except ValueError:
            raise InputError(f"--members must be comma-separated integers, got "
                             f"{only_members!r}") from None
    start = time.monotonic()
    trajectories = read_trajectories(list(data), frame_spacing_fs=frame_spacing_fs)
    summary = fit(trajectories, out_dir, cfg, n_members=n_members, device=device, resume=resume,
                  icdef=icdef, sources=[str(p) for p in data], members=members)
    for member in summary["members"]:
        v = member["validation"]
        click.echo(f"member seed {member['seed']}: bond {v['bond_rmse']:.4f} A  "
                   f"angle {v['angle_rmse']:.4f} rad  "
                   f"dihedral {v['dihedral_rmse']:.4f} rad  "
                   f"RMSD@tc {v['cartesian_rmsd_at_tc_A']:.4f} A (validation)")
    click.echo(f"{len(summary['members'])} of {n_members} member(s) trained; this call took "
               f"{time.monotonic() - start:.0f} s -> {out_dir}")
    _echo_verdict(summary["verdict"])


def _echo_verdict(verdict: dict) -> None:
    """The end-of-training verdict: baseline ratios, energy model, loud warnings (stderr)."""
    for member in verdict["members"]:
        ratios = ", ".join(f"{t} {r:.1f}x" for t, r in member["baseline_over_model"].items())
        click.echo(f"verdict: member seed {member['seed']} beats the frozen baseline by {ratios}")
    energy = verdict["energy"]
    click.echo(f"verdict: energy model validation RMSE {energy['val_rmse_eV']:.4f} eV, "
               f"{energy['rmse_over_spread']:.2f}x the energies' spread")
    for warning in verdict["warnings"]:
        click.secho(f"WARNING: {warning}", err=True, fg="red", bold=True)
    if verdict["ok"] and verdict["members"]:
        click.echo("verdict: OK (clearly better than the baselines, no over-fitting)")


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--out", required=True, type=click.Path(),
              help="A .onnx file (one member, or the whole ensemble as one ensemble file) or "
                   "a folder that receives the ensemble (see --layout).")
@click.option("--member", type=int, default=None,
              help="Export only this member.  [default: all members]")
@click.option("--layout", type=click.Choice(["ensemble", "members"]), default="ensemble",
              show_default=True,
              help="How a folder receives an ensemble: one ensemble file (ensemble.onnx, the "
                   "members' outputs stacked, one graph call) or member_K.onnx per member.")
@click.option("--unroll-segment-fs", type=float, default=None,
              help="Default length of the segments long trajectories are unrolled in, fs, "
                   "at most tc, written to the metadata.  [default: tc]")
def export(run_dir, out, member, layout, unroll_segment_fs):
    """Export a training run (RUN_DIR from `gicnet train`) to self-describing ONNX."""
    from pathlib import Path

    from gicnet_train.export import export_run

    for path, desc in export_run(run_dir, Path(out), member, unroll_segment_fs, layout):
        v = desc.validation
        members = "" if desc.n_members is None else f"{desc.n_members} members (mean), "
        click.echo(f"{path}  {members}{desc.n_atoms} atoms, tc {desc.tc_fs:g} fs, validation bond "
                   f"{v.get('bond_rmse', float('nan')):.4f} A, angle "
                   f"{v.get('angle_rmse', float('nan')):.4f} rad")


@main.command()
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
@click.option("--max-lag-fs", type=float, default=None,
              help="Longest autocorrelation lag, fs (sets the resolution).  "
                   "[default: the shortest trajectory]")
@click.option("--window", default="hann", show_default=True,
              help="Taper of the autocorrelation: hann, hamming, blackman, bartlett or none.")
@click.option("--max-wavenumber-cm", type=float, default=4000.0, show_default=True)
@click.option("--frame-spacing-fs", type=float, default=None,
              help="Frame spacing for files without time information, fs.")
def spectrum(trajectories, out, csv_path, references, mass_weighted, max_lag_fs, window,
             max_wavenumber_cm, frame_spacing_fs):
    """Vibrational power spectrum (cm-1) of TRAJECTORIES from the velocity autocorrelation."""
    from gicnet_runtime import spectrum as sp
    from gicnet_runtime.evaluate_report import trajectory_paths
    from gicnet_runtime.plots import plot_spectrum
    from gicnet_runtime.trajio import read_trajectories

    def compute(paths):
        trajs = read_trajectories(trajectory_paths(paths), frame_spacing_fs)
        return sp.power_spectrum(trajs, mass_weighted=mass_weighted, max_lag_fs=max_lag_fs,
                                 window=window, max_wavenumber_cm=max_wavenumber_cm)

    result = compute(trajectories)
    reference = compute(references) if references else None
    peaks = sp.find_peaks(result)
    plot_spectrum(out, result, peaks, reference)
    if csv_path:
        sp.write_csv(csv_path, result, reference)
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


@main.command()
@click.option("--model", "models", multiple=True, type=click.Path(),
              help="Model .onnx file or folder (ensemble); repeatable.  [default: the shipped "
                   "model]")
@click.option("--reference", "references", multiple=True, required=True, type=click.Path(),
              help="Reference trajectory file, folder or quoted glob; repeatable.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for report.json and the PNG plots.")
@click.option("--engine", type=click.Choice(["gfn2", "gfn1", "ani1x"]), default=None,
              help="Recompute the total energy of long-trajectory frames with this engine.")
@click.option("--starts-per-reference", type=int, default=20, show_default=True,
              help="Segment-error initial conditions per reference trajectory.")
@click.option("--long-starts", type=int, default=10, show_default=True,
              help="Long trajectories (from frame 0 of each reference in turn).")
@click.option("--long-duration-fs", type=float, default=2000.0, show_default=True,
              help="Length of each long trajectory, fs (50000 for the full measurement).")
@click.option("--long-dt-fs", type=float, default=1.0, show_default=True,
              help="Frame spacing of the long trajectories, fs.")
@click.option("--energy-every", type=int, default=50, show_default=True,
              help="Recompute the energy on every this many long-trajectory frames.")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Processes for the reference-engine calls.")
@click.option("--max-lag-fs", type=float, default=2000.0, show_default=True,
              help="Longest autocorrelation lag of the spectra, fs (capped by the lengths).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="onnxruntime threads.")
@_unroll_options
def evaluate(models, references, out_dir, engine, starts_per_reference, long_starts,
             long_duration_fs, long_dt_fs, energy_every, workers, max_lag_fs, device, threads,
             restore_energy, segment_fs):
    """Accuracy against reference trajectories: errors within the segment, long-time
    stability and energy conservation, and the vibrational spectrum."""
    from tqdm import tqdm

    from gicnet_runtime.evaluate import EvaluationSettings
    from gicnet_runtime.evaluate_report import run_evaluation, trajectory_paths
    from gicnet_runtime.model import load_model
    from gicnet_runtime.trajio import read_trajectories

    settings = EvaluationSettings(
        starts_per_reference=starts_per_reference, long_starts=long_starts,
        long_duration_fs=long_duration_fs, long_dt_fs=long_dt_fs, engine=engine,
        energy_every=energy_every, workers=workers, max_lag_fs=max_lag_fs,
        restore_energy=restore_energy, segment_fs=segment_fs)
    model = load_model(list(models) or None, device=device, threads=threads)
    refs = read_trajectories(trajectory_paths(references))
    report = run_evaluation(model, refs, settings, out_dir, progress=lambda stage, total: tqdm(
        total=total, desc=stage, unit="segment", disable=None).update)
    seg, stab = report["segment_errors"], report["stability"]
    click.echo(f"at tc: bond {seg['bond_rmse_A'][-1]:.4f} A, angle "
               f"{seg['angle_rmse_deg'][-1]:.2f} deg, dihedral {seg['dihedral_rmse_deg'][-1]:.2f} "
               f"deg, RMSD {seg['cartesian_rmsd_A'][-1]:.4f} A ({seg['n_starts']} starts)")
    click.echo(f"stable: {stab['stable']} of {stab['count']} x {long_duration_fs:g} fs")
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


@main.command()
@click.option("--model", "models", multiple=True, type=click.Path(),
              help="Model .onnx file or folder (ensemble).  [default: the shipped model]")
@click.option("--init", required=True, type=click.Path(dir_okay=False),
              help="Initial condition: extended XYZ with velocities.")
@click.option("--frame", type=int, default=0, show_default=True,
              help="Which frame of --init to explain.")
@click.option("--coordinate", required=True,
              help='Explained coordinate, 1-based atoms: "bond I J", "angle I J K" or '
                   '"dihedral I J K L".')
@click.option("--time-fs", type=float, required=True, help="Time within the segment, fs.")
@click.option("--baseline", type=click.Path(dir_okay=False), default=None,
              help="Baseline structure (first frame; velocities if it has them, else zero).  "
                   "[default: the explained structure at rest]")
@click.option("--steps", type=int, default=32, show_default=True,
              help="Integration points along the path.")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Bar chart of the largest attributions (.png).")
@click.option("--top", type=int, default=20, show_default=True, help="Rows shown.")
def explain(models, init, frame, coordinate, time_fs, baseline, steps, out, top):
    """Integrated-gradients attribution of one internal coordinate at time t to every input
    internal coordinate and rate (finite differences through the ONNX runtime)."""
    from gicnet_runtime import explain as xp
    from gicnet_runtime.errors import InputError
    from gicnet_runtime.initial import initial_conditions_for
    from gicnet_runtime.internal import Coordinate
    from gicnet_runtime.model import load_model
    from gicnet_runtime.plots import plot_attributions

    model = load_model(list(models) or None, device="cpu")
    conditions = initial_conditions_for(model.description, init, None, model.paths[0].parent)
    if not 0 <= frame < len(conditions):
        raise InputError(f"--frame {frame} is outside the {len(conditions)} frames of {init}")
    base = xp.read_structure(baseline, model.description.n_atoms) if baseline else (None, None)
    result = xp.integrated_gradients(
        model, conditions.positions[frame], conditions.velocities[frame],
        Coordinate.parse(coordinate, model.description.n_atoms), time_fs, *base, steps=steps)
    for line in xp.format_table(result, top):
        click.echo(line)
    if out:
        plot_attributions(out, result.labels, result.values,
                          f"{result.coordinate.label()} at {time_fs:g} fs", top)
        click.echo(out)


if __name__ == "__main__":
    main()

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
@click.option("--out", required=True, type=click.Path(dir_okay=False), help=_OUT_HELP)
def predict(models, init, velocities, device, threads, times, out):
    """Predict frames within one segment from each initial condition (one model call)."""
    import numpy as np

    from gicnet_runtime.initial import initial_conditions_for
    from gicnet_runtime.model import load_model
    from gicnet_runtime.outputs import prediction_trajectories, write_trajectories
    from gicnet_runtime.timegrid import parse_times

    model = load_model(list(models) or None, device=device, threads=threads)
    conditions = initial_conditions_for(model.description, init, velocities,
                                        model.paths[0].parent)
    times_fs = np.unique(parse_times(times))
    result = model.predict(conditions.positions, conditions.velocities, times_fs)
    trajectories = prediction_trajectories(
        result.positions, result.velocities, result.potential_energy, times_fs,
        model.description, {"engine": "gicnet", "models": [p.name for p in model.paths]},
        result.member)
    for path in write_trajectories(trajectories, out):
        click.echo(f"{path}  {times_fs.size} frames, {times_fs[0]:g}-{times_fs[-1]:g} fs")


@main.command()
@_runtime_options
@click.option("--duration-fs", type=float, required=True, help="Trajectory length, fs.")
@click.option("--dt-fs", type=float, required=True,
              help="Spacing of the output frames, fs (any value, independent of tc).")
@click.option("--energy-threshold-eV", "energy_threshold_eV", type=float, default=None,
              help="Largest total-energy error of a segment before stepping back and trying "
                   "the next ensemble member, eV.  [default: 1 kcal/mol = 0.0434 eV]")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help=_OUT_HELP)
def propagate(models, init, velocities, device, threads, duration_fs, dt_fs,
              energy_threshold_eV, out):
    """Unroll long trajectories segment by segment, all initial conditions in one batch."""
    from tqdm import tqdm

    from gicnet_runtime.ensemble import ENERGY_THRESHOLD_EV
    from gicnet_runtime.errors import GicnetError
    from gicnet_runtime.initial import initial_conditions_for
    from gicnet_runtime.model import load_model
    from gicnet_runtime.outputs import write_trajectories

    model = load_model(list(models) or None, device=device, threads=threads)
    conditions = initial_conditions_for(model.description, init, velocities,
                                        model.paths[0].parent)
    total = len(conditions) * model.segment_count(duration_fs, dt_fs)
    with tqdm(total=total, unit="segment", desc="propagate", disable=None) as bar:
        trajectories = model.propagate(
            conditions.positions, conditions.velocities, duration_fs, dt_fs,
            energy_threshold_eV=ENERGY_THRESHOLD_EV if energy_threshold_eV is None
            else energy_threshold_eV, progress=bar.update)
    for path, traj in zip(write_trajectories(trajectories, out), trajectories):
        click.echo(f"{path}  {traj.n_frames} frames to {traj.time_fs[-1]:g} fs, "
                   f"{traj.info['backtracks']} backtracks, "
                   f"{len(traj.info['segments_over_threshold'])} segments over the threshold")
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
    click.echo(f"provenance: {json.dumps(desc.provenance, indent=2, sort_keys=True)}")
    for member in model.members:
        validation = json.dumps(member.description.validation, sort_keys=True)
        click.echo(f"validation ({member.path.name}): {validation}")


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
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--hidden", type=str, default="1024,512,256,128,64", show_default=True,
              help="Hidden layer widths of the MLP.")
@click.option("--batch-size", type=int, default=256, show_default=True,
              help="Initial conditions per step.")
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Peak learning rate.")
@click.option("--stride", type=int, default=2, show_default=True,
              help="Every STRIDE-th frame is an initial condition.")
@click.option("--times-per-pair", type=int, default=4, show_default=True,
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
def train(data, out_dir, tc_fs, epochs, n_members, device, resume, seed, hidden, batch_size, lr,
          stride, times_per_pair, energy_epochs, energy_weight, gate_width_fs, ic_file,
          frame_spacing_fs, threads):
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
        model=ModelConfig(hidden=widths, tc_fs=tc_fs, gate_width_fs=gate_width_fs),
        weights=dataclasses.replace(LossWeights(), energy=energy_weight),
        energy=dataclasses.replace(EnergyTrainConfig(), epochs=energy_epochs),
        epochs=epochs, batch_size=batch_size, lr=lr, stride=stride,
        times_per_pair=times_per_pair, seed=seed)
    icdef = ICDefinition.read(ic_file) if ic_file else None
    start = time.monotonic()
    trajectories = read_trajectories(list(data), frame_spacing_fs=frame_spacing_fs)
    summary = fit(trajectories, out_dir, cfg, n_members=n_members, device=device, resume=resume,
                  icdef=icdef, sources=[str(p) for p in data])
    for k, member in enumerate(summary["members"]):
        v = member["validation"]
        click.echo(f"member {k}: bond {v['bond_rmse']:.4f} A  angle {v['angle_rmse']:.4f} rad  "
                   f"dihedral {v['dihedral_rmse']:.4f} rad  "
                   f"RMSD@tc {v['cartesian_rmsd_at_tc_A']:.4f} A (validation)")
    click.echo(f"trained {n_members} member(s) in {time.monotonic() - start:.0f} s -> {out_dir}")


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--out", required=True, type=click.Path(),
              help="A .onnx file (one member) or a folder that receives member_K.onnx for "
                   "every trained member (an ensemble).")
@click.option("--member", type=int, default=None,
              help="Export only this member.  [default: all members]")
def export(run_dir, out, member):
    """Export a training run (RUN_DIR from `gicnet train`) to self-describing ONNX."""
    from pathlib import Path

    from gicnet_train.export import export_run

    for path, desc in export_run(run_dir, Path(out), member):
        v = desc.validation
        click.echo(f"{path}  {desc.n_atoms} atoms, tc {desc.tc_fs:g} fs, validation bond "
                   f"{v.get('bond_rmse', float('nan')):.4f} A, angle "
                   f"{v.get('angle_rmse', float('nan')):.4f} rad")


if __name__ == "__main__":
    main()

"""The training layer's commands of ``gicnet``: ``train`` and ``export``.

They join the ``gicnet`` group through the ``gicnet.commands`` entry points
(pyproject.toml).  This module imports only click and the torch-free settings
(:mod:`gicnet_train.config`, where train's option defaults come from): torch is imported
when a command runs, and a runtime-only install (no torch) gets a one-line "install
gicnet[train]" error.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import click
from click.core import ParameterSource

from gicnet_runtime.cli.estimate import MAX_PARAMETERS, check_train, limit_option
from gicnet_runtime.cli.types import DURATION_FS, INDEX, STEP_FS, THREADS
from gicnet_runtime.core.description import HEADS, MAX_MEMBERS, RESTORE_DEFICITS
from gicnet_runtime.errors import GicnetError, InputError
from gicnet_train.config import default_setting, load_config


def require_training() -> None:
    """Raise the one-line error that says what to install when torch or onnx is missing."""
    for module in ("torch", "onnx"):
        try:
            importlib.import_module(module)
        except ImportError:
            raise GicnetError(f"{module} is not installed: training and export need "
                              "gicnet[train] (pip install torch==2.13.0 first on CPU-only "
                              "machines, then pip install 'gicnet[train]')") from None


#: train's options that set a TrainConfig field: parameter name -> dotted setting.  Their
#: defaults are the fields' defaults; given on the command line, they override --config.
SETTING_OPTIONS = {
    "tc_fs": "model.tc_fs", "hidden": "model.hidden", "head": "model.head",
    "n_basis": "model.n_basis", "gate_width_fs": "model.gate_width_fs", "epochs": "epochs",
    "patience": "patience", "batch_size": "batch_size", "lr": "lr", "stride": "stride",
    "times_per_pair": "times_per_pair", "energy_epochs": "energy.epochs",
    "energy_weight": "weights.energy", "amplitude_weight": "weights.amplitude",
    "rollout_weight": "weights.rollout", "rollout_segments": "rollout_segments",
    "grad_clip": "grad_clip", "seed": "seed",
    "time_budget_s": "time_budget_s",
    "checkpoint_every_s": "checkpoint_every_s",
}


class _Widths(click.ParamType):
    """Comma-separated layer widths -> tuple of ints (their range is checked with the rest of
    the settings, in gicnet_train.config)."""

    name = "W,W,..."

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            return tuple(int(w) for w in str(value).split(","))
        except ValueError:
            self.fail(f"must be comma-separated integers, got {value!r}", param, ctx)


def _setting(flag: str, kind, help_text: str):
    """An option of a TrainConfig field, its default read from the dataclass."""
    name = flag.lstrip("-").replace("-", "_")
    return click.option(flag, name, type=kind, default=default_setting(SETTING_OPTIONS[name]),
                        show_default=True, help=help_text)


@click.command()
@click.argument("data", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Run folder (checkpoints, metrics, run.json).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="Training settings, JSON (gicnet_train.config.TrainConfig: the \"config\" "
                   "of a run.json, every key optional); options given here override it.")
@_setting("--tc-fs", float, "Segment length, fs.")
@_setting("--epochs", int, "Epochs (at most; see --patience and --time-budget-s).")
@click.option("--ensemble", "n_members", type=click.IntRange(max=MAX_MEMBERS), default=1,
              show_default=True,
              help="Members trained with seeds SEED, SEED+1000, ...")
@click.option("--device", type=str, default="auto", show_default=True,
              help="auto, cpu or cuda.")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted run in --out (same settings; the time budget and "
                   "checkpoint interval may change).")
@_setting("--checkpoint-every-s", float, "Seconds between mid-epoch checkpoints (last.pt).")
@_setting("--seed", int, "Seed of member 0.")
@_setting("--hidden", _Widths(), "Hidden layer widths of the MLP.")
@_setting("--head", click.Choice(HEADS),
          "Time dependence: 'basis' (one network pass per start, a Chebyshev basis in t) or "
          "'time' (the paper's: t is a network input).")
@_setting("--n-basis", int, "Basis functions of the basis head.")
@_setting("--patience", int,
          "Stop after this many epochs without a better validation loss (0 = off).")
@_setting("--batch-size", int, "Initial conditions per step.")
@_setting("--lr", float, "Peak learning rate.")
@_setting("--stride", int, "Every STRIDE-th frame is an initial condition.")
@_setting("--times-per-pair", int, "Target times drawn per initial condition and step (0 = all).")
@_setting("--energy-epochs", int, "Epochs of the auxiliary energy model.")
@_setting("--energy-weight", float, "Weight of the energy-consistency term, 1/eV (0 = off).")
@_setting("--amplitude-weight", float,
          "Weight of the bond-amplitude term, 1/Å (0 = off): counters the damping of fast "
          "stretches at the segment's end.")
@_setting("--rollout-weight", float,
          "Weight of the chained second segment's terms (0 = off): the loss also scores a "
          "segment started from the model's own prediction at tc (about 2x the step time).")
@_setting("--rollout-segments", int,
          "Segments the chained term scores after the first, each from the previous one's "
          "predicted end (one more network pass per step each).")
@_setting("--grad-clip", float, "Clip the gradient norm at this value (0 = off).")
@click.option("--init-from", type=click.Path(file_okay=False, exists=True), default=None,
              help="Fine-tune: start each member from this finished run's member (same data "
                   "files and model settings; its energy model is reused).")
@_setting("--gate-width-fs", float, "a in the gate f(t) = 1 - exp(-(t/a)^2), fs.")
@click.option("--ic", "ic_file", type=click.Path(dir_okay=False), default=None,
              help="IC definition (.ic, MLatom format); default: built from the first frame.")
@click.option("--frame-spacing-fs", type=STEP_FS, default=None,
              help="Frame spacing for files without time information, fs.")
@click.option("--threads", type=THREADS, default=None, help="torch CPU threads.")
@_setting("--time-budget-s", float,
          "Cut the epochs, after the first, to what fits this many seconds per member (0 = off).")
@click.option("--members", "only_members", type=str, default=None,
              help="Train only these member indices (comma-separated; empty string: only the "
                   "energy model), e.g. to train members in parallel processes with --resume.")
@limit_option("--max-parameters", MAX_PARAMETERS, "network parameters (at least, from --hidden)")
def train(data, out_dir, config_file, n_members, device, resume, ic_file, frame_spacing_fs,
          threads, only_members, max_parameters, init_from, **settings):
    """Train a GICnet ensemble on trajectory files DATA (H5MD, extxyz, .traj, MLatom npz;
    folders and quoted glob patterns are expanded)."""
    require_training()
    import time

    import torch

    from gicnet_runtime.cli.signals import graceful_stop
    from gicnet_runtime.core.icdef import ICDefinition
    from gicnet_runtime.io.formats import read_trajectories
    from gicnet_runtime.io.paths import trajectory_paths
    from gicnet_train.fit import fit

    cfg = _config(click.get_current_context(), config_file, settings)
    if n_members < 1:
        raise InputError(f"--ensemble must be >= 1, got {n_members}")
    check_train(cfg, max_parameters)
    members = _member_indices(only_members)
    paths = trajectory_paths(data)
    if threads:
        torch.set_num_threads(threads)
    icdef = ICDefinition.read(ic_file) if ic_file else None
    start = time.monotonic()
    trajectories = read_trajectories(paths, frame_spacing_fs=frame_spacing_fs)
    created = not Path(out_dir).exists()
    try:
        with graceful_stop() as stop:
            summary = fit(trajectories, out_dir, cfg, n_members=n_members, device=device,
                          resume=resume, icdef=icdef, sources=[str(p) for p in paths],
                          members=members, should_stop=stop,
                          init_from=Path(init_from) if init_from else None)
    except BaseException:
        _remove_if_empty_run(Path(out_dir), created)
        raise
    for member in summary["members"]:
        v = member["validation"]
        click.echo(f"member seed {member['seed']}: bond {v['bond_rmse']:.4f} A  "
                   f"angle {v['angle_rmse']:.4f} rad  "
                   f"dihedral {v['dihedral_rmse']:.4f} rad  "
                   f"RMSD@tc {v['cartesian_rmsd_at_tc_A']:.4f} A (validation)")
    click.echo(f"{len(summary['members'])} of {n_members} member(s) trained; this call took "
               f"{time.monotonic() - start:.0f} s -> {out_dir}")
    _echo_verdict(summary["verdict"])


def _remove_if_empty_run(out_dir: Path, created: bool) -> None:
    """After a failed call: delete the run folder it created when no checkpoint made it
    worth keeping (a resumable run keeps its folder)."""
    import shutil

    if created and out_dir.is_dir() and not any(out_dir.rglob("*.pt")):
        shutil.rmtree(out_dir, ignore_errors=True)


def _config(ctx: click.Context, config_file: str | None, settings: dict):
    """The TrainConfig of --config (or the defaults) with the options given on the command
    line put over it; errors name those options by their flags."""
    explicit = [name for name in settings
                if ctx.get_parameter_source(name) is not ParameterSource.DEFAULT]
    flags = {param.name: param.opts[0] for param in ctx.command.params}
    return load_config(config_file, {SETTING_OPTIONS[n]: settings[n] for n in explicit},
                       {SETTING_OPTIONS[n]: flags[n] for n in explicit})


def _member_indices(only_members: str | None) -> list[int] | None:
    """--members as a list of indices (None: all members)."""
    if only_members is None:
        return None
    try:
        return [int(k) for k in only_members.split(",") if k.strip()]
    except ValueError:
        raise InputError(f"--members must be comma-separated integers, got "
                         f"{only_members!r}") from None


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


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--out", required=True, type=click.Path(),
              help="A .onnx file (one member, or the whole ensemble as one ensemble file) or "
                   "a folder that receives the ensemble (see --layout).")
@click.option("--member", type=INDEX, default=None,
              help="Export only this member.  [default: all members]")
@click.option("--layout", type=click.Choice(["ensemble", "members"]), default="ensemble",
              show_default=True,
              help="How a folder receives an ensemble: one ensemble file (ensemble.onnx, the "
                   "members' outputs stacked, one graph call) or member_K.onnx per member.")
@click.option("--unroll-segment-fs", type=DURATION_FS, default=None,
              help="Default length of the segments long trajectories are unrolled in, fs, "
                   "at most tc, written to the metadata.  [default: tc]")
@click.option("--restore-fraction", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Fraction of a segment's total-energy deficit that energy restoration puts "
                   "back at the segment's end, written to the metadata.  [default: 1]")
@click.option("--restore-deficit", type=click.Choice(RESTORE_DEFICITS), default=None,
              help="How energy restoration measures a segment's deficit: at its end, or its "
                   "mean over the segment, written to the metadata.  [default: end]")
@click.option("--reversal-share", type=click.FloatRange(0, 1), default=None,
              help="Share of the round-trip (forward, then backward) defect that the "
                   "time-reversal correction adds to each segment's start, written to the "
                   "metadata; 0 switches the correction off.  [default: 0]")
def export(run_dir, out, member, layout, unroll_segment_fs, restore_fraction, restore_deficit,
           reversal_share):
    """Export a training run (RUN_DIR from `gicnet train`) to self-describing ONNX."""
    require_training()
    from pathlib import Path

    from gicnet_runtime.io.plan import OutputPlan
    from gicnet_train.export import export_run, export_targets, remove_stale_models

    out = Path(out)
    folder = None if out.suffix == ".onnx" or out.is_dir() else out
    targets = export_targets(run_dir, out, member, layout)
    if folder is not None:
        folder.mkdir(parents=True)
    try:
        with OutputPlan(command="export") as plan:
            for path in targets:
                plan.add(path, "model")
            written = export_run(run_dir, out, member, unroll_segment_fs, layout,
                                 stage=plan.staged, restore_fraction=restore_fraction,
                                 restore_deficit=restore_deficit,
                                 reversal_share=reversal_share)
            plan.commit()
        remove_stale_models(out, member, [path for path, _ in written])
    except BaseException:
        if folder is not None and not any(folder.iterdir()):
            folder.rmdir()  # made for this export, which failed: leave nothing behind
        raise
    for path, desc in written:
        v = desc.validation
        members = "" if desc.n_members is None else f"{desc.n_members} members (mean), "
        click.echo(f"{path}  {members}{desc.n_atoms} atoms, tc {desc.tc_fs:g} fs, validation bond "
                   f"{v.get('bond_rmse', float('nan')):.4f} A, angle "
                   f"{v.get('angle_rmse', float('nan')):.4f} rad")

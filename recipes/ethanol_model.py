"""Train, export and measure a shipped GICnet ensemble (ethanol; azobenzene with --settings).

    python recipes/ethanol_model.py train [--device auto] [--parallel] [--time-budget-s S]
    python recipes/ethanol_model.py export       # run_dir -> exported/ethanol (+ initial.extxyz)
    python recipes/ethanol_model.py report       # held-out 0-10 fs errors -> report.json
    make model                                   # all three, after `make data`
    python recipes/ethanol_model.py --settings recipes/azobenzene_model.json train  # etc.

Settings live in ``recipes/ethanol_model.json``: its "train" section is a ``gicnet train
--config`` file (:class:`gicnet_train.config.TrainConfig`, keys left out take the
defaults; ``time_budget_s`` is one of them), and "train_options" holds what is not a
training setting (the ensemble's size, torch threads per process).  ``train`` writes the
complete settings to ``RUN_DIR/train_config.json`` and runs ``gicnet train --config`` on
the data recipe's train split: first the shared energy model, then every member (one
after the other, or with ``--parallel`` in one process each, e.g. on a GPU).  With a
"finetune" section (settings put over "train"), that run goes to ``RUN_DIR-base`` and a
second one, ``gicnet train --init-from RUN_DIR-base`` with the "finetune" settings, to
``RUN_DIR`` (the ethanol recipe has none: its ``stages_note`` says why).  An
interrupted ``train`` continues where it stopped (``gicnet train --resume``; only the time
budget may change then).  ``export`` writes ``ensemble.onnx`` (all members in one file),
``members/member_K.onnx`` and ``initial.extxyz``: frame 0 of every held-out trajectory
(the example starts of ``gicnet propagate``).  ``report`` measures every
member on the held-out trajectories over 0-10 fs and writes ``report.json`` beside the
exported models.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing gicnet

from gicnet_runtime.core.trajectory import Trajectory  # noqa: E402
from gicnet_runtime.errors import GicnetError, InputError  # noqa: E402
from gicnet_runtime.io.formats import read_trajectories, write_trajectory  # noqa: E402

SETTINGS = ROOT / "recipes" / "ethanol_model.json"
#: The training settings gicnet train reads, written into the run folder.
CONFIG_NAME = "train_config.json"
#: Every REPORT_STRIDE-th held-out frame starts a measured segment (0.5 fs frames: 5 fs).
REPORT_STRIDE = 10


def load_settings(path: Path = SETTINGS) -> dict:
    return json.loads(Path(path).read_text())


def data_files(settings: dict, split: str) -> list[Path]:
    files = sorted((ROOT / settings["data"][split]).glob("*.h5"))
    if not files:
        raise InputError(f"no trajectories in {settings['data'][split]}: run its data recipe "
                         "first (make data, make azobenzene-data)")
    return files


def stages(settings: dict) -> list[tuple[Path, dict]]:
    """(run folder, ``gicnet train --config`` section) of each training stage: the "train"
    section into run_dir; with a "finetune" section (settings put over "train"), first
    "train" into run_dir + "-base", then the fine-tuning from it into run_dir."""
    run_dir = ROOT / settings["run_dir"]
    if "finetune" not in settings:
        return [(run_dir, settings["train"])]
    finetune = {**settings["train"], **settings["finetune"]}
    finetune["weights"] = {**settings["train"].get("weights", {}),
                           **settings["finetune"].get("weights", {})}
    return [(run_dir.with_name(run_dir.name + "-base"), settings["train"]),
            (run_dir, finetune)]


def write_config(section: dict, run_dir: Path, time_budget_s: float | None = None) -> Path:
    """A "train" section (a ``gicnet train --config`` file), with ``time_budget_s`` over
    its budget when given, checked and written in full (defaults included) to
    ``run_dir/train_config.json``: what the run reads, kept beside it."""
    from gicnet_runtime.atomic import write_json
    from gicnet_train.config import config_from_dict

    section, labels = dict(section), {}
    if time_budget_s is not None:
        section["time_budget_s"], labels["time_budget_s"] = time_budget_s, "--time-budget-s"
    cfg = config_from_dict(section, labels, source="the recipe's train section")
    path = run_dir / CONFIG_NAME
    write_json(cfg.to_dict(), path)
    return path


def write_ic(settings: dict) -> list[str]:
    """``--ic FILE`` when the settings name an ``ic_structure`` (the IC definition built
    from that structure, written to ``run_dir/ic_structure.ic``), else nothing (gicnet
    train builds it from the first training frame)."""
    if "ic_structure" not in settings:
        return []
    import ase.io

    from gicnet_train.icbuild import build_icdef

    atoms = ase.io.read(ROOT / settings["ic_structure"])
    path = ROOT / settings["run_dir"] / "ic_structure.ic"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_icdef(atoms.positions, atoms.numbers, atoms.get_masses())
                    .to_ic_text())
    return ["--ic", str(path)]


def train_command(settings: dict, run_dir: Path, config: Path, device: str,
                  init_from: Path | None = None) -> list[str]:
    """``gicnet train --config CONFIG --resume`` on the train split into ``run_dir``, with
    the "train_options" (ensemble size, torch threads), the IC definition of
    :func:`write_ic` and ``--init-from`` when given."""
    options = settings["train_options"]
    return [sys.executable, str(ROOT / "cli.py"), "train",
            *map(str, data_files(settings, "train")), "--out", str(run_dir),
            "--config", str(config), "--ensemble", str(options["ensemble"]),
            "--threads", str(options["threads"]), "--device", device, "--resume",
            *write_ic(settings), *([] if init_from is None else ["--init-from", str(init_from)])]


def train(settings: dict, device: str, parallel: bool, time_budget_s: float | None) -> None:
    """Every stage of :func:`stages`: the energy model, then the members (in parallel
    processes with ``parallel``); ``time_budget_s`` replaces the first stage's budget."""
    start, previous = time.monotonic(), None
    for run_dir, section in stages(settings):
        config = write_config(section, run_dir, time_budget_s if previous is None else None)
        command = train_command(settings, run_dir, config, device, previous)
        if not parallel:
            subprocess.run(command, check=True)
        else:
            train_parallel(command, run_dir, settings["train_options"]["ensemble"])
        previous = run_dir
    wall = {"wall_time_s": time.monotonic() - start, "device": device, "parallel": parallel}
    (ROOT / settings["run_dir"] / "train_wall.json").write_text(json.dumps(wall, indent=1))
    print(f"trained in {wall['wall_time_s']:.0f} s on {device}")


def train_parallel(command: list[str], run_dir: Path, n_members: int) -> None:
    """The energy model (``--members ""``), then one process per member, then the run's
    summary (a last call that has nothing left to train)."""
    subprocess.run(command + ["--members", ""], check=True)
    procs = []
    for k in range(n_members):
        log = open(run_dir / f"member_{k}.log", "w")
        procs.append(subprocess.Popen(command + ["--members", str(k)], stdout=log,
                                      stderr=subprocess.STDOUT))
    if any(p.wait() != 0 for p in procs):
        raise GicnetError(f"a member failed; see {run_dir}/member_*.log")
    subprocess.run(command, check=True)


#: Settings keys written to the exported models' metadata: key -> `gicnet export` option.
EXPORT_UNROLLING = {"unroll_segment_fs": "unroll-segment-fs",
                    "unroll_restore_fraction": "restore-fraction",
                    "unroll_restore_deficit": "restore-deficit",
                    "unroll_reversal_share": "reversal-share"}


def export(settings: dict) -> None:
    """The ensemble as one ensemble file (what the runtime loads by default), every member
    as its own file under ``members/``, plus the held-out initial conditions."""
    out = ROOT / settings["export_dir"]
    unrolling = [f"--{option}={settings[key]}" for key, option in EXPORT_UNROLLING.items()
                 if settings.get(key) is not None]
    for folder, layout in ((out, "ensemble"), (out / "members", "members")):
        subprocess.run([sys.executable, str(ROOT / "cli.py"), "export",
                        str(ROOT / settings["run_dir"]), "--out", str(folder), "--layout", layout]
                       + unrolling, check=True)
    init = settings["initial_conditions"]
    write_trajectory(initial_conditions(data_files(settings, init["split"]), init["frame"]),
                     out / "initial.extxyz")
    print(f"wrote {out / 'initial.extxyz'}")


def initial_conditions(files: list[Path], frame: int) -> Trajectory:
    """Frame ``frame`` of every trajectory, as one multi-frame 'trajectory' (one start each)."""
    trajs = read_trajectories(files)
    first = trajs[0]
    seeds = [t.info.get("seed") for t in trajs]
    return Trajectory(
        time_fs=np.arange(len(trajs), dtype=float),
        positions=np.stack([t.positions[frame] for t in trajs]),
        velocities=np.stack([t.velocities[frame] for t in trajs]),
        atomic_numbers=first.atomic_numbers, masses=first.masses,
        potential_energy=np.array([t.potential_energy[frame] for t in trajs]),
        info={"description": f"frame {frame} of held-out GFN2-xTB trajectories, seeds {seeds}; "
                             "each frame is one initial condition (its time_fs is an index)"})


def report(settings: dict) -> dict:
    """0-10 fs errors of every member on the held-out trajectories -> report.json."""
    from gicnet_train.export import trained_members
    from gicnet_train.fit import load_member, member_report
    from gicnet_train.pairs import build_pairs

    run_dir = ROOT / settings["run_dir"]
    heldout = read_trajectories(data_files(settings, "heldout"))
    result, pairs = {"members": []}, None
    for k in trained_members(run_dir):
        model, _, _ = load_member(run_dir, k)
        if pairs is None:  # members of one run share the IC definition and tc
            pairs = build_pairs(heldout, model.icdef, model.config.tc_fs, REPORT_STRIDE)
        errors = member_report(model, pairs, model.icdef)
        result["members"].append({"member": k, **errors})
    result["ensemble_mean"] = ensemble_mean_report(settings, heldout)
    result["n_heldout_trajectories"] = len(heldout)
    result["n_segments"] = len(pairs)
    result["train_wall"] = json.loads((run_dir / "train_wall.json").read_text()) \
        if (run_dir / "train_wall.json").exists() else None
    out = ROOT / settings["export_dir"] / "report.json"
    out.write_text(json.dumps(result, indent=1))
    for name, v in [(f"member {m['member']}", m["validation"]) for m in result["members"]] \
            + [("ensemble mean", result["ensemble_mean"])]:
        print(f"{name}: bond {v['bond_rmse']:.4f} A  angle {v['angle_rmse']:.4f} "
              f"rad  dihedral {v['dihedral_rmse']:.4f} rad  RMSD@10fs "
              f"{v['cartesian_rmsd_at_tc_A']:.4f} A (held-out)")
    return result


def ensemble_mean_report(settings: dict, heldout: list[Trajectory]) -> dict:
    """The exported ensemble's mean prediction (``Model.predict``'s default), measured by
    :func:`heldout_errors`."""
    from gicnet_runtime.core.model import load_model

    return heldout_errors(load_model(ROOT / settings["export_dir"], device="cpu"), heldout)


def heldout_starts(model, heldout: list[Trajectory]) -> int:
    """Segment starts per held-out trajectory: every REPORT_STRIDE-th frame that leaves a
    whole segment after it."""
    per_segment = round(model.description.tc_fs / (heldout[0].time_fs[1] - heldout[0].time_fs[0]))
    return (heldout[0].n_frames - per_segment - 1) // REPORT_STRIDE + 1


def heldout_errors(model, heldout: list[Trajectory]) -> dict:
    """A runtime model's prediction (``Model.predict``'s default) on segments started at
    :func:`heldout_starts`: RMSE over all times in (0, tc] (bond Å, angle and dihedral rad)
    and the Cartesian RMSD at tc."""
    from gicnet_runtime.analysis.evaluate import segment_errors

    seg = segment_errors(model, heldout, heldout_starts(model, heldout))

    def overall(values: list[float]) -> float:  # equal counts per time: RMS of the RMSEs
        return float(np.sqrt(np.mean(np.square(values[1:]))))

    return {"bond_rmse": overall(seg["bond_rmse_A"]),
            "angle_rmse": float(np.radians(overall(seg["angle_rmse_deg"]))),
            "dihedral_rmse": float(np.radians(overall(seg["dihedral_rmse_deg"]))),
            "cartesian_rmsd_at_tc_A": seg["cartesian_rmsd_A"][-1], "n_segments": seg["n_starts"],
            "measured_by": "gicnet_runtime.analysis.evaluate.segment_errors on the exported models"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["train", "export", "report"])
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--parallel", action="store_true", help="one process per member")
    parser.add_argument("--settings", type=Path, default=SETTINGS, help="settings JSON")
    parser.add_argument("--time-budget-s", type=float, default=None,
                        help="per-member training time budget, s (default: the settings'; "
                             "may change when an interrupted train continues)")
    args = parser.parse_args(argv)
    settings = load_settings(args.settings)
    try:
        if args.step == "train":
            train(settings, args.device, args.parallel, args.time_budget_s)
        elif args.step == "export":
            export(settings)
        else:
            report(settings)
    except GicnetError as err:
        print(f"model recipe: error: {err}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as err:
        print(f"model recipe: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

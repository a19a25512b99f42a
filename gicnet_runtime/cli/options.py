"""Options shared by several commands, and the rules that go with them."""

from __future__ import annotations

import click

from gicnet_runtime.cli.types import FINITE, THREADS
from gicnet_runtime.io.formats import FORMATS

#: Frames of an --init file taken as initial conditions without --frames or --all-frames;
#: a longer file is a trajectory, not a deliberate batch of starts.
MAX_IMPLICIT_FRAMES = 100
#: How the CLI's unknown-suffix error ends (``format_of(..., hint=FORMAT_HINT)``).
FORMAT_HINT = "pass --format"


def runtime_options(command):
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
        click.option("--threads", type=THREADS, default=None,
                     help="onnxruntime threads.  [default: onnxruntime's choice]"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


OUT_HELP = ("Output file: .xyz/.extxyz (ASE-readable, velocities included), .h5/.h5md or "
             ".npz, written atomically; several initial conditions give OUT_000.ext, "
             "OUT_001.ext, ...")


def unroll_options(command):
    """How long trajectories are unrolled (propagate, evaluate)."""
    options = [
        click.option("--restore-energy/--no-restore-energy", default=None,
                     help="Start every segment with the trajectory's initial total energy "
                          "(model potential + kinetic) by scaling the stretch-and-bend "
                          "velocities.  [default: on for models with energy]"),
        click.option("--segment-fs", type=FINITE, default=None,
                     help="Length of the unrolled segments, fs, at most the model's tc "
                          "(shorter: more accurate, more network calls).  [default: the "
                          "model's unroll_segment_fs, else tc]"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def frame_options(command):
    """--frames and --all-frames: which frames of --init are initial conditions."""
    options = [
        click.option("--frames", default=None, metavar="SPEC",
                     help="Frames of --init to start from, 0-based: I, I,J,... or "
                          "START:STOP:STEP (STOP included; e.g. 0,5,10 or ::1000).  "
                          f"Needed when --init holds more than {MAX_IMPLICIT_FRAMES} frames "
                          "(a trajectory, not a batch of starts).  [default: every frame]"),
        click.option("--all-frames", is_flag=True,
                     help="Start from every frame of --init, however many."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def choose_frames(conditions, frames: str | None, all_frames: bool, source):
    """The initial conditions --frames / --all-frames pick from ``conditions`` (read from
    ``source``) and their 0-based frame indices; InputError for a long file without either.

    Returns (InitialConditions, (B,) int frame indices)."""
    import dataclasses

    import numpy as np

    from gicnet_runtime.errors import InputError
    from gicnet_runtime.io.initial import parse_frames

    count = len(conditions)
    if frames is not None and all_frames:
        raise InputError("give --frames or --all-frames, not both")
    if frames is None:
        if count > MAX_IMPLICIT_FRAMES and not all_frames:
            raise InputError(
                f"{source} holds {count} frames, more than the {MAX_IMPLICIT_FRAMES} taken as "
                f"initial conditions unasked; pick some with --frames (0-based, e.g. --frames "
                f"0,5,10 or --frames 0:{count - 1}:{max(1, count // 10)}) or pass --all-frames")
        return conditions, np.arange(count)
    try:
        index = parse_frames(frames, count)
    except InputError as err:
        raise InputError(f"{source}: {err}") from None
    picked = dataclasses.replace(conditions, positions=conditions.positions[index],
                                 velocities=conditions.velocities[index])
    return picked, index


def format_option(command):
    """--format: the output format, when the --out suffix does not tell it."""
    return click.option(
        "--format", "fmt", type=click.Choice(FORMATS), default=None,
        help="Output format.  [default: from the --out suffix: .h5/.h5md/.hdf5 h5md, "
             ".xyz/.extxyz extxyz, .traj traj, .npz npz]")(command)


RAY_HELP = ("Run on a Ray cluster (pip install 'gicnet[ray]'): alone, a local cluster of this "
            "machine's cores; with ADDRESS, 'auto' (the cluster `ray start` runs here), "
            "HOST:PORT of a head node or ray://HOST:10001 (Ray Client).")


def ray_option(command):
    """--ray [ADDRESS]: where a command's work runs on Ray (propagate, simulate)."""
    return click.option("--ray", "ray_address", is_flag=False, flag_value="local",
                        default=None, metavar="[ADDRESS]", help=RAY_HELP)(command)

"""Work estimates: a command refuses, before it starts, work far beyond any normal use.

Each command counts what its options ask for (frames written or held in memory, segments
unrolled, reference-engine calls, network parameters) from the options, the model and
the initial conditions alone, without making any array, and refuses a count above its
limit in one line that names the option lifting it (:func:`check_work`):
``propagate would write 2e12 frames (432 TB); the limit is 1e9 frames (--max-frames
lifts it)``.  The limits are far above every normal use (given with each), so only a
typo or a hostile value meets them.  ``propagate`` also checks the free disk space for
its output and frame spool (:func:`check_disk`).
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import click

from gicnet_runtime.cli.types import FiniteFloat
from gicnet_runtime.core.timegrid import frame_count, segment_count, unroll_segment_fs
from gicnet_runtime.errors import InputError

#: Frames `propagate` may write (B trajectories x T frames): 10^4 trajectories of 10 ps
#: at 0.5 fs are 2e8.
MAX_FRAMES = 10 ** 9
#: Memory, GB, the frames of `predict` and `evaluate` may take (float64 positions and
#: velocities; predict's once per ensemble member and once more): predict from 10^4
#: starts at 201 times takes 2.6 GB for ethanol with two members, evaluate's full
#: measurement (10 x 50 ps at 1 fs) 0.2 GB.
MAX_MEMORY_GB = 16.0
#: Segment predictions an unrolling may make (B trajectories x S segments): 10^4
#: trajectories of 10 ps in 10 fs segments are 1e7, one of 1 ns in 1 fs segments 1e6.
MAX_SEGMENTS = 10 ** 9
#: Reference-engine calls (simulate's MD steps, evaluate's energy recomputations): 100
#: trajectories of 2 ps equilibration + 10 ps NVE at 0.5 fs are 2.4e6.
MAX_ENGINE_CALLS = 10 ** 8
#: Network parameters `train` may build: the default networks have 2e5.
MAX_PARAMETERS = 10 ** 8
#: Bytes per atom of a frame's float32 positions and velocities (the frame spool's).
STORED_BYTES_PER_ATOM = 6 * 4
#: Bytes per atom of a frame's float64 positions and velocities held in memory.
HELD_BYTES_PER_ATOM = 6 * 8
#: Bytes a trained parameter costs: float32 weight, gradient and two Adam moments.
TRAINED_BYTES_PER_PARAMETER = 4 * 4
#: The type of the --max-* options (they take 1e10 as well as 10000000000).
LIMIT = FiniteFloat(min=1)
#: The type of --max-memory-gb.
MEMORY_GB = FiniteFloat(min=0, min_open=True)


def limit_option(flag: str, default: float, what: str):
    """A ``--max-...`` option that lifts one of these limits (``what``: "frames written")."""
    return click.option(flag, type=LIMIT, default=default, show_default=True,
                        help=f"Refuse to start a run of more {what} than this.")


def memory_option(what: str):
    """--max-memory-gb: lifts :data:`MAX_MEMORY_GB` (``what``: the frames it bounds)."""
    return click.option("--max-memory-gb", type=MEMORY_GB, default=MAX_MEMORY_GB,
                        show_default=True,
                        help=f"Refuse to start when {what} would take more memory, GB.")


def check_work(command: str, verb: str, amount: float, unit: str, limit: float, option: str,
               detail: str | None = None, show=None) -> None:
    """InputError ``{command} would {verb} {amount} {unit} ({detail}); the limit is {limit}
    {unit} ({option} lifts it)`` when ``amount`` exceeds ``limit`` (numbers shown by
    ``show``, default :func:`count_text`)."""
    if amount > limit:
        show = show or count_text
        more = f" ({detail})" if detail else ""
        raise InputError(f"{command} would {verb} {show(amount)} {unit}{more}; the limit "
                         f"is {show(limit)} {unit} ({option} lifts it)")


def check_memory(command: str, frames: float, model, max_memory_gb: float,
                 copies: int = 1) -> None:
    """``frames`` held in memory, float64, ``copies`` times."""
    held = frames * model.description.n_atoms * HELD_BYTES_PER_ATOM * copies
    check_work(command, "hold", held, "in memory", max_memory_gb * 1e9, "--max-memory-gb",
               f"{count_text(frames)} frames", size_text)


def check_predict(model, n_starts: int, n_times: int, max_memory_gb: float) -> None:
    """predict: B starts x K times, held in memory by every member and their mean."""
    members = model.n_members
    check_memory("predict", n_starts * n_times, model, max_memory_gb,
                 members + 1 if members > 1 else 1)


def check_propagate(model, n_trajectories: int, duration_fs: float, dt_fs: float,
                    segment_fs: float | None, max_frames: float, max_segments: float) -> float:
    """propagate: B trajectories x T frames written, B x S segments; returns the frames."""
    frames, segments = unrolled_work(model, n_trajectories, duration_fs, dt_fs, segment_fs)
    check_work("propagate", "write", frames, "frames", max_frames, "--max-frames",
               size_text(frames * model.description.n_atoms * STORED_BYTES_PER_ATOM))
    check_work("propagate", "unroll", segments, "segments", max_segments, "--max-segments")
    return frames


def check_evaluate(model, settings, max_memory_gb: float, max_segments: float,
                   max_engine_calls: float) -> None:
    """evaluate: its long trajectories (held in memory) and the energy recomputations."""
    frames, segments = unrolled_work(model, settings.long_starts, settings.long_duration_fs,
                                     settings.long_dt_fs, settings.segment_fs, "long-")
    check_memory("evaluate", frames, model, max_memory_gb)
    check_work("evaluate", "unroll", segments, "segments", max_segments, "--max-segments")
    if settings.engine is not None:
        check_work("evaluate", "make", frames / settings.energy_every, "reference-engine calls",
                   max_engine_calls, "--max-engine-calls")


def unrolled_work(model, n_trajectories: int, duration_fs: float, dt_fs: float,
                  segment_fs: float | None, prefix: str = "") -> tuple[float, float]:
    """Frames (B x T) and segments (B x S) of unrolling ``n_trajectories``, counted; the
    options (``--{prefix}dt-fs`` ...) checked against each other and the model's tc."""
    if dt_fs > duration_fs:
        raise InputError(f"--{prefix}dt-fs {dt_fs:g} is longer than --{prefix}duration-fs "
                         f"{duration_fs:g}: no frames")
    desc = model.description
    segment = unroll_segment_fs(desc.tc_fs, desc.default_segment_fs if segment_fs is None
                                else segment_fs)
    return (n_trajectories * frame_count(duration_fs, dt_fs),
            n_trajectories * segment_count(duration_fs, dt_fs, segment))


def check_simulate(settings, n_trajectories: int, max_engine_calls: float) -> None:
    """simulate: one engine call per MD step (equilibration and NVE) of every trajectory."""
    steps = n_trajectories * (settings.n_equilibration_steps + settings.n_nve_steps)
    check_work("simulate", "make", steps, "reference-engine calls", max_engine_calls,
               "--max-engine-calls", f"MD steps of {n_trajectories} trajectories")


def check_train(config, max_parameters: float) -> None:
    """train: the parameters of the networks (at least those between the hidden layers)."""
    parameters = sum(network_parameters(widths)
                     for widths in (config.model.hidden, config.energy.hidden))
    check_work("train", "build networks of at least", parameters, "parameters", max_parameters,
               "--max-parameters",
               f"{size_text(parameters * TRAINED_BYTES_PER_PARAMETER)} to train")


def network_parameters(hidden: tuple[int, ...]) -> int:
    """A lower bound on an MLP's parameters from its hidden widths (one input and one
    output at least): the weights between layers and the biases."""
    widths = (1, *hidden, 1)
    return sum(a * b + b for a, b in zip(widths, widths[1:]))


def check_disk(out: str | os.PathLike, frames: float, n_atoms: int) -> None:
    """InputError when the folder of ``out`` clearly lacks the space for propagate's frame
    spool and output (at least float32 positions and velocities each; a spool left by an
    interrupted run counts as space already taken)."""
    from gicnet_runtime.io.spool import spool_path

    folder, spool = Path(out).parent, spool_path(out)
    needed = 2 * frames * n_atoms * STORED_BYTES_PER_ATOM
    if spool.is_file():
        needed -= spool.stat().st_blocks * 512
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # the output check (check_writable) reports a folder that cannot be used
    if needed > free:
        raise InputError(f"the output and frame spool of {out} need at least "
                         f"{size_text(needed)}, but {folder} has {size_text(free)} free")


def count_text(value: float) -> str:
    """A count for messages: 20001, 2.1e12, 1e9."""
    if not math.isfinite(value):
        return f"{value}"
    if value < 1e5:
        return f"{value:.0f}"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def size_text(n_bytes: float) -> str:
    """Bytes in decimal units for messages: 512 B, 9.4 TB."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB", "EB"):
        if n_bytes < 1000 or unit == "EB":
            break
        n_bytes /= 1000
    if unit == "B":
        return f"{n_bytes:.0f} B"
    return f"{n_bytes:.3g} {unit}" if n_bytes < 1000 else f"{count_text(n_bytes)} {unit}"

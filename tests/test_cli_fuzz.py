"""Hypothesis fuzzing of every command's options (docs/robustness.md, "Validated options").

Random option values -- NaN, inf, huge, negative, zero, denormal, garbage strings and
small valid values -- go to every command through click's CliRunner, on small real
inputs (the shipped model, its initial conditions, a 40 fs trajectory written here).  Each
example must end with exit 0 or one ``gicnet: error:`` line (exit 1, or 2 for usage
errors), never a traceback, within ``EXAMPLE_LIMIT_S``, leave the inputs unchanged and,
when it fails, write nothing.  Every command runs tiny: the work limits are set low in
the base arguments (the fuzzer may only lower them or make them invalid); the shipped
model is loaded once; ``simulate``'s MD and ``train``'s fitting are replaced by stubs
(their options, settings and work estimates are checked before, for real).
"""

import hashlib
import importlib
import shutil
import signal
import sys
import tempfile
import traceback
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gicnet_runtime.cli import main
from gicnet_runtime.errors import GicnetError
from gicnet_train.cli import export, train

SHIPPED = Path(__file__).resolve().parents[1] / "exported" / "ethanol"
INIT = SHIPPED / "initial.extxyz"
#: Wall-time limit of one example, s (the slowest valid one takes ~2 s).
EXAMPLE_LIMIT_S = 30
#: Examples per command (derandomized: the same ones on every run).
EXAMPLES = 40

#: Numbers no command takes: not finite, negative, zero, denormal, absurd, not numbers.
HOSTILE = ["nan", "NaN", "inf", "-inf", "+inf", "-1", "0", "-0", "1e308", "1e309", "1e-320",
           "-1e-300", "1e12", "99999999999999999999999", "1" + "0" * 5000, "2147483648",
           "1.5", "abc", "", " ", "1,5", "0x10", "1e", "--", "5 fs", "\x00"]
#: Values for the work limits: invalid, or low (a limit the fuzzer raises could start work
#: that is valid but long).
LIMITS = ["nan", "inf", "-inf", "-1", "0", "1e-9", "abc", "", "1", "1e1", "50"]


#: Any hostile value: the list above or a short random string.
ANY_HOSTILE = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=8))


def _floats(low: float, high: float):
    """An option taking a number in [low, high] (valid) or any hostile value."""
    return st.floats(low, high).map(lambda x: f"{x:.4g}"), ANY_HOSTILE


def _ints(low: int, high: int):
    return st.integers(low, high).map(str), ANY_HOSTILE


def _words(valid: list, hostile: list):
    """An option taking one of the strings ``valid``, or ``hostile`` ones."""
    return st.sampled_from(valid), st.one_of(st.sampled_from(hostile), st.text(max_size=10))


def _options(**pairs) -> dict:
    """Option name (``max_lag_fs`` for --max-lag-fs) -> (valid values, hostile values)."""
    return {"--" + name.replace("_", "-"): pair for name, pair in pairs.items()}


TIMES = _words(["0:10:1", "0:10:0.5", "5", "0,2.5,10", "10:10:1"],
               ["0:inf:1", "nan", "0:10:1e-9", "-1,2", "1e308", "0:10:0", "10:0:1", "a:b:c",
                "0:1e308:1e-308", "1,,", ":", "0:10:-1", "11", "0:1:2:3", ""])
FRAMES = _words(["0", "1,2", "::5", "9"],
                ["-1", "10", "0:9:0", "abc", "", "0:-1:1", "99999999999999999999",
                 "0:99999999999999:1", "1e3", "::0"])
THREADS = st.just("1"), ANY_HOSTILE
LIMIT = _words(["1", "1e1", "50"], LIMITS)
HIDDEN = _words(["8", "8,8", "4,4,4"],
                ["-4", "0", "1000000000", "1e3", "a", "", "8,,8", "100000,100000",
                 "99999999999999999999"])

#: command -> (base arguments (files, out folder) -> list, fuzzed options).
COMMANDS = {
    "predict": (
        lambda f, out: ["predict", "--init", INIT, "--frames", "0", "--device", "cpu",
                        "--times", "0:10:2", "--out", out / "p.xyz", "--max-memory-gb", "0.01"],
        _options(times=TIMES, frames=FRAMES, threads=THREADS,
                 max_memory_gb=_words(["0.001", "0.01"], LIMITS),
                 ensemble=_words(["mean", "select"], ["bogus"]))),
    "propagate": (
        lambda f, out: ["propagate", "--init", INIT, "--frames", "0", "--device", "cpu",
                        "--duration-fs", "5", "--out", out / "t.xyz", "--max-frames", "400",
                        "--max-segments", "60"],
        _options(duration_fs=_floats(0.5, 30), dt_fs=_floats(0.1, 5),
                 segment_fs=_floats(0.5, 10), energy_threshold_eV=_floats(0.001, 1),
                 checkpoint_every_s=_floats(0, 100), frames=FRAMES, threads=THREADS,
                 max_frames=LIMIT, max_segments=LIMIT)),
    "explain": (
        lambda f, out: ["explain", "--init", INIT, "--coordinate", "bond 1 2", "--time-fs", "5",
                        "--steps", "4"],
        _options(frame=_ints(0, 9), time_fs=_floats(0, 10), steps=_ints(1, 8), top=_ints(1, 30),
                 coordinate=_words(["bond 1 2", "angle 1 2 3", "dihedral 1 2 3 4"],
                                   ["bond 1 1", "bond 0 2", "bond 1 99", "angle 1 2", "",
                                    "bond 1 99999999999999999999", "bond a b", "bond -1 2"]))),
    "spectrum": (
        lambda f, out: ["spectrum", f["trajectory"], "--out", out / "s.png"],
        _options(max_lag_fs=_floats(2, 30), max_wavenumber_cm=_floats(100, 4000),
                 frame_spacing_fs=_floats(0.1, 2),
                 window=_words(["hann", "none"], ["bogus", ""]))),
    "evaluate": (
        lambda f, out: ["evaluate", "--reference", f["trajectory"], "--out", out / "ev",
                        "--device", "cpu", "--long-starts", "1", "--long-duration-fs", "20",
                        "--starts-per-reference", "2", "--max-lag-fs", "10",
                        "--max-memory-gb", "0.01", "--max-segments", "50"],
        _options(starts_per_reference=_ints(1, 3), long_starts=_ints(1, 2),
                 long_duration_fs=_floats(5, 40), long_dt_fs=_floats(0.25, 2),
                 energy_every=_ints(1, 10), workers=THREADS, max_lag_fs=_floats(2, 20),
                 segment_fs=_floats(1, 10), max_memory_gb=_words(["0.001", "0.01"], LIMITS),
                 max_segments=LIMIT, max_engine_calls=LIMIT)),
    "simulate": (
        lambda f, out: ["simulate", "H2O", "--out", out / "sim", "--workers", "1"],
        _options(temperature_K=_floats(10, 1000), dt_fs=_floats(0.1, 1),
                 duration_fs=_floats(1, 100), equilibration_fs=_floats(0, 100),
                 friction_per_fs=_floats(0.001, 1), save_every=_ints(1, 4),
                 n_trajectories=_ints(1, 3), seed=_ints(0, 100), workers=_ints(1, 2),
                 max_engine_calls=LIMIT)),
    "train": (
        lambda f, out: ["train", f["trajectory"], "--out", out / "run", "--device", "cpu"],
        _options(tc_fs=_floats(1, 10), epochs=_ints(1, 3), ensemble=_ints(1, 3), hidden=HIDDEN,
                 n_basis=_ints(1, 8), patience=_ints(0, 3), batch_size=_ints(1, 64),
                 lr=_floats(1e-4, 1e-2), stride=_ints(1, 8), times_per_pair=_ints(0, 4),
                 energy_epochs=_ints(1, 3), energy_weight=_floats(0, 1),
                 amplitude_weight=_floats(0, 5),
                 gate_width_fs=_floats(0.5, 5), frame_spacing_fs=_floats(0.1, 2),
                 threads=THREADS, time_budget_s=_floats(0, 10),
                 checkpoint_every_s=_floats(0, 60), seed=_ints(0, 10),
                 members=_words(["0", "0,1", ""], ["-1", "a", "0,0", "99999999999999999999"]),
                 max_parameters=_words(["1e5", "1e6"], LIMITS))),
    "export": (
        lambda f, out: ["export", f["run_dir"], "--out", out / "m.onnx"],
        _options(member=_ints(0, 2), unroll_segment_fs=_floats(0.5, 10),
                 restore_fraction=_floats(0.01, 1), restore_deficit=_words(["end", "mean"],
                                                                          ["start", "END"]),
                 layout=_words(["ensemble", "members"], ["bogus"]))),
}


class ExampleTimeout(Exception):
    """An example ran longer than EXAMPLE_LIMIT_S."""


class FitReached(GicnetError):
    """The stub of ``fit``: train's options were all accepted."""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The inputs (a 40 fs trajectory of the shipped model, an empty run folder), with the
    shipped model loaded once for every command and the stubs of MD and fitting."""
    from gicnet_runtime.core import model as model_module
    from gicnet_runtime.io.formats import write_trajectory
    from gicnet_runtime.io.initial import initial_conditions_for
    from gicnet_runtime.reference import simulate as simulate_module
    from gicnet_train import fit as fit_module

    folder = tmp_path_factory.mktemp("fuzz")
    load, cache = model_module.load_model, {}

    def cached(path=None, **kwargs):
        key = (repr(path), repr(sorted(kwargs.items())))
        if key not in cache:
            cache[key] = load(path, **kwargs)
        return cache[key]

    model = cached(None, device="cpu")
    start = initial_conditions_for(model.description, None, None, SHIPPED)
    trajectory = folder / "trajectory.extxyz"
    write_trajectory(model.propagate(start.positions[0], start.velocities[0], 40.0, 0.5)[0],
                     trajectory)
    (folder / "run").mkdir()

    def fit_stub(*args, **kwargs):
        raise FitReached("fit reached (a stub in this test)")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(model_module, "load_model", cached)
        patch.setattr(simulate_module, "simulate_to_files", lambda *args, **kwargs: [])
        patch.setattr(fit_module, "fit", fit_stub)
        yield {"dir": folder, "trajectory": trajectory, "run_dir": folder / "run"}


def _hashes(files) -> dict:
    paths = [*SHIPPED.rglob("*"), *files["dir"].glob("*")]
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.is_file()}


def _invoke(args: list) -> object:
    """One CLI call under the wall-time guard (torch's thread count, which train's
    --threads sets, restored after)."""
    torch = (importlib.import_module("torch") if args[0] in ("train", "export")
             else sys.modules.get("torch"))  # train and export import it anyway
    group = type(main)("gicnet", commands=[*main.commands.values(), train, export])
    threads = torch and torch.get_num_threads()

    def expire(signum, frame):
        raise ExampleTimeout(f"more than {EXAMPLE_LIMIT_S} s: {args}")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(EXAMPLE_LIMIT_S)
    try:
        return CliRunner().invoke(group, [str(a) for a in args])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        if torch is not None:
            torch.set_num_threads(threads)


def _check(result, out: Path) -> None:
    described = f"{result.exit_code}: {result.output[-2000:]}"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        described += "".join(traceback.format_exception(result.exception))
    assert result.exit_code in (0, 1, 2), described
    assert result.exception is None or isinstance(result.exception, SystemExit), described
    assert "Traceback" not in result.output, described
    if result.exit_code == 0:
        return
    errors = [line for line in result.stderr.splitlines() if line.startswith("gicnet: error: ")]
    assert len(errors) == 1, described
    if result.exit_code == 2:
        assert result.stderr.strip().splitlines() == errors, described
    if "stopped early" not in errors[0]:
        written = [p for p in out.rglob("*") if p.is_file()]
        assert written == [], f"{written} written by a failed call: {described}"


@pytest.mark.parametrize("command", COMMANDS)
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_random_option_values_give_a_result_or_one_line(files, command, data):
    base, options = COMMANDS[command]
    chosen = data.draw(st.fixed_dictionaries(
        {}, optional={flag: valid for flag, (valid, _) in options.items()}), label="valid")
    for flag in data.draw(st.lists(st.sampled_from(sorted(options)), max_size=2, unique=True),
                          label="hostile options"):
        chosen[flag] = data.draw(options[flag][1], label=flag)
    out = Path(tempfile.mkdtemp(dir=files["dir"], prefix="out"))
    before = _hashes(files)
    try:
        args = base(files, out) + [item for pair in chosen.items() for item in pair]
        _check(_invoke(args), out)
        assert _hashes(files) == before, "an input file changed"
    finally:
        shutil.rmtree(out)

"""Validated options (docs/robustness.md): every number of every command is finite and in
range (gicnet_runtime.cli.types), options that must agree are checked against each other
and the model, and a run whose work is far beyond normal use is refused before it starts
(gicnet_runtime.cli.estimate) -- each in one line, with nothing written."""

import math
import shutil
import types
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from gicnet_runtime.analysis.evaluate import EvaluationSettings
from gicnet_runtime.cli import estimate, main
from gicnet_runtime.cli.estimate import (
    MAX_ENGINE_CALLS,
    MAX_FRAMES,
    MAX_MEMORY_GB,
    MAX_PARAMETERS,
    MAX_SEGMENTS,
    check_evaluate,
    check_predict,
    check_propagate,
    check_simulate,
    check_train,
    count_text,
    size_text,
)
from gicnet_runtime.cli.types import FiniteFloat
from gicnet_runtime.core.timegrid import (
    MAX_TIMES,
    frame_times_fs,
    parse_times,
    segment_count,
    segment_of,
)
from gicnet_runtime.errors import InputError
from gicnet_runtime.reference.simulate import SimulationSettings
from gicnet_train.cli import export, train
from gicnet_train.config import TrainConfig

INIT = Path(__file__).resolve().parents[1] / "exported" / "ethanol" / "initial.extxyz"
#: A stand-in for the shipped model where only its sizes matter: 9 atoms, tc 10 fs, 2 members.
ETHANOL = types.SimpleNamespace(
    description=types.SimpleNamespace(n_atoms=9, tc_fs=10.0, default_segment_fs=10.0),
    n_members=2)


def _invoke(*args):
    group = type(main)("gicnet", commands=[*main.commands.values(), train, export])
    return CliRunner().invoke(group, [str(a) for a in args])


def _predict(out, *extra):
    return ["predict", "--init", INIT, "--device", "cpu", "--times", "0:10:1", "--out",
            out / "out.xyz", *extra]


def _propagate(out, *extra):
    return ["propagate", "--init", INIT, "--device", "cpu", "--duration-fs", "20", "--out",
            out / "out.xyz", *extra]


def _evaluate(out, *extra):
    return ["evaluate", "--reference", INIT, "--device", "cpu", "--out", out / "ev", *extra]


def _explain(out, *extra):
    return ["explain", "--init", INIT, "--coordinate", "bond 1 2", "--time-fs", "5", *extra]


def _simulate(out, *extra):
    return ["simulate", "H2O", "--out", out / "sim", *extra]


def _train(out, *extra):
    return ["train", out / "none.h5", "--out", out / "run", *extra]


#: CASE -> (command-line builder, its extra options, exit code, a fragment of the message).
CASES = {
    # Usage errors (exit 2), before any file is read.
    "duration_inf": (_propagate, ["--duration-fs", "inf"], 2,
                     "Invalid value for '--duration-fs': must be a finite number, got 'inf'"),
    "dt_nan": (_propagate, ["--dt-fs", "nan"], 2, "'--dt-fs': must be a finite number"),
    "dt_denormal": (_propagate, ["--dt-fs", "1e-320"], 2,
                    "'--dt-fs': must be a number in [1e-6, 1e15], got 9.99989e-321"),
    "segment_inf": (_propagate, ["--segment-fs", "inf"], 2, "'--segment-fs': must be a finite"),
    "threshold_nan": (_propagate, ["--energy-threshold-eV", "nan"], 2,
                      "'--energy-threshold-eV': must be a finite number"),
    "checkpoint_inf": (_propagate, ["--checkpoint-every-s", "inf"], 2,
                       "'--checkpoint-every-s': must be a finite number"),
    "limit_nan": (_propagate, ["--max-frames", "nan"], 2, "'--max-frames': must be a finite"),
    "not_a_number": (_propagate, ["--duration-fs", "ten"], 2, "'ten' is not a number"),
    "threads_huge": (_predict, ["--threads", "100000"], 2,
                     "'--threads': 100000 is not in the range 1<=x<=1024"),
    "memory_zero": (_predict, ["--max-memory-gb", "0"], 2,
                    "'--max-memory-gb': must be a positive number"),
    "max_lag_nan": (_evaluate, ["--max-lag-fs", "nan"], 2, "'--max-lag-fs': must be a finite"),
    "long_starts_zero": (_evaluate, ["--long-starts", "0"], 2,
                         "'--long-starts': 0 is not in the range x>=1"),
    "steps_huge": (_explain, ["--steps", "100000"], 2,
                   "'--steps': 100000 is not in the range 1<=x<=1000"),
    "top_negative": (_explain, ["--top", "-3"], 2, "'--top': -3 is not in the range x>=1"),
    "time_inf": (_explain, ["--time-fs", "inf"], 2, "'--time-fs': must be a finite number"),
    "wavenumber_negative": (lambda out, *x: ["spectrum", INIT, "--out", out / "s.png", *x],
                            ["--max-wavenumber-cm", "-4000"], 2,
                            "'--max-wavenumber-cm': must be a positive number"),
    "workers_huge": (_simulate, ["--workers", "1000000"], 2,
                     "'--workers': 1000000 is not in the range 1<=x<=1024"),
    "seed_negative": (_simulate, ["--seed", "-1"], 2, "'--seed': -1 is not in the range x>=0"),
    "duration_beyond_a_second": (_simulate, ["--duration-fs", "1e308"], 2,
                                 "'--duration-fs': must be a positive number <= 1e15, got 1e308"),
    "temperature_nan": (_simulate, ["--temperature-K", "nan"], 2,
                        "'--temperature-K': must be a finite number"),
    "ensemble_huge": (_train, ["--ensemble", "100000"], 2,
                      "'--ensemble': 100000 is not in the range x<=256"),
    "unroll_segment_inf": (lambda out, *x: ["export", INIT.parent, "--out", out / "m.onnx", *x],
                           ["--unroll-segment-fs", "inf"], 2,
                           "'--unroll-segment-fs': must be a finite number"),
    # Time lists, cross-checks and work estimates (exit 1), before any work.
    "times_inf": (_predict, ["--times", "0:inf:1"], 1, "times_fs contain NaN or inf: '0:inf:1'"),
    "times_too_many": (_predict, ["--times", "0:10:1e-6"], 1,
                       "times 0:10:1e-06 give 10,000,001 times, more than the 1,000,000"),
    "predict_memory": (_predict, ["--times", "0:10:0.001", "--max-memory-gb", "0.1"], 1,
                       "predict would hold 130 MB in memory (1e5 frames); the limit is 100 MB "
                       "in memory (--max-memory-gb lifts it)"),
    "duration_huge": (_propagate, ["--duration-fs", "1e12"], 1,
                      "propagate would write 2e13 frames (4.32 PB); the limit is 1e9 frames "
                      "(--max-frames lifts it)"),
    "dt_tiny": (_propagate, ["--duration-fs", "1e5", "--dt-fs", "1e-6"], 1,
                "propagate would write 1e12 frames (216 TB)"),
    "segment_tiny": (_propagate, ["--duration-fs", "100", "--segment-fs", "1e-9"], 1,
                     "propagate would unroll 1e12 segments; the limit is 1e9 segments "
                     "(--max-segments lifts it)"),
    "dt_longer_than_duration": (_propagate, ["--duration-fs", "10", "--dt-fs", "20"], 1,
                                "--dt-fs 20 is longer than --duration-fs 10: no frames"),
    "segment_beyond_tc": (_propagate, ["--segment-fs", "12"], 1,
                          "segment length must lie in (0, 10] fs"),
    "segment_negative": (_propagate, ["--segment-fs", "-1"], 1,
                         "segment length must lie in (0, 10] fs (the model's tc), got -1 fs"),
    "long_duration_huge": (_evaluate, ["--long-duration-fs", "1e12"], 1,
                           "evaluate would hold 4.32 PB in memory (1e13 frames); the limit is "
                           "16 GB in memory (--max-memory-gb lifts it)"),
    "long_dt_longer": (_evaluate, ["--long-dt-fs", "1e5"], 1,
                       "--long-dt-fs 100000 is longer than --long-duration-fs 2000"),
    "engine_calls": (_evaluate, ["--engine", "gfn2", "--long-starts", "100", "--long-duration-fs",
                                 "50000", "--long-dt-fs", "0.01", "--energy-every", "1",
                                 "--max-memory-gb", "1e4"], 1,
                     "evaluate would make 5e8 reference-engine calls; the limit is 1e8 "
                     "reference-engine calls (--max-engine-calls lifts it)"),
    "wavenumber_below_vibrations": (
        lambda out, *x: ["spectrum", INIT, "--out", out / "s.png", *x],
        ["--max-wavenumber-cm", "100"], 1, "the spectrum has no point between 200 and 100 cm-1"),
    "time_beyond_tc": (_explain, ["--time-fs", "12"], 1, "time_fs must lie within [0, 10] fs"),
    "frame_outside": (_explain, ["--frame", "10"], 1, "--frame 10 is outside the 10 frames"),
    "md_steps": (_simulate, ["--dt-fs", "1e-6"], 1,
                 "simulate would make 4.8e10 reference-engine calls (MD steps of 4 "
                 "trajectories); the limit is 1e8 reference-engine calls"),
    "many_trajectories": (_simulate, ["--n-trajectories", "2147483648"], 1,
                          "simulate would make 5.2e13 reference-engine calls"),
    "hidden_huge": (_train, ["--hidden", "1000000000"], 1,
                    "train would build networks of at least 3e9 parameters (48 GB to train); "
                    "the limit is 1e8 parameters (--max-parameters lifts it)"),
    "hidden_negative": (_train, ["--hidden", "-4"], 1, "--hidden must hold integers >= 1"),
    "tc_inf": (_train, ["--tc-fs", "inf"], 1, "--tc-fs must be a finite number > 0, got inf"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_bad_option_is_refused_in_one_line_and_writes_nothing(tmp_path, case):
    build, extra, code, expected = CASES[case]
    result = _invoke(*build(tmp_path, *extra))
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == code, result.output
    assert len(lines) == 1 and lines[0].startswith("gicnet: error: "), result.stderr
    assert expected in lines[0], lines[0]
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == [], "something was written"


def test_the_limits_are_lifted_by_their_options(tmp_path):
    refused = _invoke(*_propagate(tmp_path, "--frames", "0", "--max-frames", "10"))
    assert refused.exit_code == 1 and "(--max-frames lifts it)" in refused.stderr
    lifted = _invoke(*_propagate(tmp_path, "--frames", "0", "--max-frames", "1e2"))
    assert lifted.exit_code == 0, lifted.output
    assert (tmp_path / "out.xyz").is_file()


def test_frames_sparser_than_the_segments_are_written(tmp_path):
    """A segment that holds no output frame (dt 2 fs, segments of 1 fs) writes nothing."""
    result = _invoke(*_propagate(tmp_path, "--frames", "0", "--duration-fs", "9", "--dt-fs",
                                 "2", "--segment-fs", "1"))
    assert result.exit_code == 0, result.output
    assert "5 frames to 8 fs" in result.output


def test_a_disk_without_room_for_the_output_and_spool_is_refused(tmp_path, monkeypatch):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(estimate.shutil, "disk_usage",
                        lambda path: usage._replace(free=10_000))
    result = _invoke(*_propagate(tmp_path, "--duration-fs", "100"))
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == (f"gicnet: error: the output and frame spool of "
                                     f"{tmp_path / 'out.xyz'} need at least 868 kB, but "
                                     f"{tmp_path} has 10 kB free")
    assert list(tmp_path.iterdir()) == []


def test_normal_use_passes_every_limit():
    """10^4 trajectories of 10 ps at 0.5 fs, predict from 10^4 starts at 201 times, the full
    evaluate measurement, 100 reference trajectories of 12 ps, the default networks."""
    check_propagate(ETHANOL, 10 ** 4, 10_000.0, 0.5, None, MAX_FRAMES, MAX_SEGMENTS)
    check_propagate(ETHANOL, 1, 10 ** 6, 0.5, 1.0, MAX_FRAMES, MAX_SEGMENTS)  # 1 ns, 1 fs
    check_predict(ETHANOL, 10 ** 4, 201, MAX_MEMORY_GB)
    check_evaluate(ETHANOL, EvaluationSettings(long_duration_fs=50_000.0, engine="gfn2"),
                   MAX_MEMORY_GB, MAX_SEGMENTS, MAX_ENGINE_CALLS)
    check_simulate(SimulationSettings("CH3CH2OH"), 100, MAX_ENGINE_CALLS)
    check_train(TrainConfig(), MAX_PARAMETERS)


@pytest.mark.parametrize(("value", "ok"), [
    ("0.5", True), ("1e-6", True), (" 2 ", True), (3, True), ("0", False), ("-0.5", False),
    ("nan", False), ("inf", False), ("-inf", False), ("1e400", False), ("1" + "0" * 5000, False),
    ("abc", False), ("", False), ("0x10", False), (True, False)])
def test_finite_float_refuses_non_finite_and_out_of_range_values(value, ok):
    kind = FiniteFloat(min=0, min_open=True, max=1e300)
    if ok:
        assert kind.convert(value, None, None) == float(value)
    else:
        with pytest.raises(click.BadParameter) as caught:
            kind.convert(value, None, None)
        assert "\n" not in caught.value.format_message()


def test_finite_float_describes_its_range():
    assert FiniteFloat(min=0, min_open=True).describe() == "a positive number"
    assert FiniteFloat(min=0).describe() == "a number >= 0"
    assert FiniteFloat(min=0, max=10, min_open=True).describe() == "a positive number <= 10"
    assert FiniteFloat(min=1e-6, max=1e15).describe() == "a number in [1e-6, 1e15]"
    assert FiniteFloat(max=1, max_open=True).describe() == "a number < 1"


@pytest.mark.parametrize(("spec", "message"), [
    ("0:inf:1", "times_fs contain NaN or inf"), ("nan,1", "times_fs contain NaN or inf"),
    ("0:10:nan", "times_fs contain NaN or inf"), ("0:10:1e-300", "more than the 1,000,000"),
    ("-1e308:1e308:1", "give inf times"), ("0:10:0", "time step must be positive")])
def test_parse_times_refuses_non_finite_values_and_huge_grids(spec, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        parse_times(spec)


def test_parse_times_allows_the_largest_grid():
    assert parse_times(f"0:{MAX_TIMES - 1}:1").size == MAX_TIMES
    with pytest.raises(InputError, match="more than the"):
        parse_times(",".join(["1"] * (MAX_TIMES + 1)))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(duration=st.floats(0.05, 200.0), dt=st.sampled_from([0.1, 0.25, 0.5, 1.0, 2.5, 0.3]),
       segment=st.floats(0.05, 10.0))
def test_segment_count_counts_what_the_frames_need(duration, dt, segment):
    frames = frame_times_fs(duration, dt)
    assert segment_count(duration, dt, segment) == int(segment_of(frames, segment)[-1]) + 1


def test_counts_and_sizes_read_well():
    assert [count_text(x) for x in (20001, 2.1e12, 1e9, math.inf)] == [
        "20001", "2.1e12", "1e9", "inf"]
    assert [size_text(x) for x in (512, 9.4e12, 2e6)] == ["512 B", "9.4 TB", "2 MB"]
    weights, biases = 512 + 512 * 256 + 256 * 128 + 128, 512 + 256 + 128 + 1
    assert estimate.network_parameters((512, 256, 128)) == weights + biases

"""Progress on stderr: tqdm on a terminal, plain timed lines off it (a fake clock)."""

import io

import pytest

from gicnet_runtime.progress import (
    PROGRESS_INTERVAL_S,
    PlainProgress,
    StageProgress,
    progress,
)


class FakeClock:
    """A clock the test moves by hand, s."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_lines_come_at_most_every_interval():
    clock, stream = FakeClock(), io.StringIO()
    bar = progress(400, "propagate", "segment", stream=stream, clock=clock)
    assert isinstance(bar, PlainProgress)
    for _ in range(40):  # 40 updates of 10 segments, 0.3 s apart: 12 s in all
        clock.now += 0.3
        bar.update(10)
    lines = stream.getvalue().splitlines()
    assert len(lines) == int(12 / PROGRESS_INTERVAL_S)
    # the first line when 5 s had passed: 17 updates (5.1 s), 170 segments
    assert lines[0] == "propagate: 170/400 segments (42%), 5 s elapsed, ~7 s left"
    bar.close()
    assert stream.getvalue().splitlines()[-1] == "propagate: 400/400 segments (100%), 12 s elapsed"
    bar.close()  # idempotent
    assert len(stream.getvalue().splitlines()) == len(lines) + 1


def test_a_short_run_prints_nothing():
    clock, stream = FakeClock(), io.StringIO()
    with progress(3, "predict", stream=stream, clock=clock) as bar:
        for _ in range(3):
            clock.now += 1.0
            bar.update()
    assert stream.getvalue() == ""


def test_the_estimate_counts_minutes_and_hours():
    clock, stream = FakeClock(), io.StringIO()
    bar = PlainProgress(100, "evaluate", "trajectory", stream, clock)
    clock.now += 185.0
    bar.update(25)
    assert stream.getvalue() == ("evaluate: 25/100 trajectories (25%), 3 min 05 s elapsed, "
                                 "~9 min 15 s left\n")
    clock.now += 3 * 3600.0
    bar.update(1)
    # 10985 s for 26 of 100: 10985 * 74 / 26 s = 8 h 41 min to go
    assert stream.getvalue().splitlines()[-1].endswith("3 h 03 min elapsed, ~8 h 41 min left")


def test_an_unknown_total_has_no_estimate():
    clock, stream = FakeClock(), io.StringIO()
    bar = PlainProgress(None, "read", "frame", stream, clock)
    clock.now += PROGRESS_INTERVAL_S
    bar.update(7)
    assert stream.getvalue() == "read: 7 frames, 5 s elapsed\n"


def test_on_a_terminal_it_is_a_tqdm_bar():
    from tqdm import tqdm

    stream = Terminal()
    with progress(10, "propagate", stream=stream) as bar:
        assert isinstance(bar, tqdm)
        bar.update(10)
    assert "propagate" in stream.getvalue() and "10/10" in stream.getvalue()


@pytest.mark.parametrize("stream", [None, io.StringIO()])
def test_default_stream_is_stderr(stream, capsys):
    clock = FakeClock()
    bar = progress(2, "spectrum", "trajectory", stream=stream, clock=clock)
    clock.now += PROGRESS_INTERVAL_S
    bar.update()
    text = capsys.readouterr().err if stream is None else stream.getvalue()
    assert text == "spectrum: 1/2 trajectories (50%), 5 s elapsed, ~5 s left\n"


def test_stages_close_the_one_before():
    clock, stream = FakeClock(), io.StringIO()
    with StageProgress(stream=stream, clock=clock) as stages:
        update = stages("segment errors", 10)
        clock.now += 6.0
        update(5)
        update = stages("propagate", 4)  # closes "segment errors": its last line
        clock.now += 6.0
        update(4)
    assert stream.getvalue().splitlines() == [
        "segment errors: 5/10 segments (50%), 6 s elapsed, ~6 s left",
        "segment errors: 5/10 segments (50%), 6 s elapsed, ~6 s left",
        "propagate: 4/4 segments (100%), 6 s elapsed",
        "propagate: 4/4 segments (100%), 6 s elapsed",
    ]

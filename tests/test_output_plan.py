"""One output plan per command: outputs checked before any work, never an input, one live
writer per output, all written together or not at all, stale temporaries cleaned; SIGINT
and SIGTERM save a checkpoint and say how to resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from gicnet_runtime.cli import main
from gicnet_runtime.core.model import DEFAULT_MODEL_DIR
from gicnet_runtime.errors import InputError
from gicnet_runtime.io.formats import read_trajectory
from gicnet_runtime.io.plan import OutputPlan

ROOT = Path(__file__).resolve().parent.parent
INIT = DEFAULT_MODEL_DIR / "initial.extxyz"


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _one_line_error(result, text: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gicnet: error: "), result.stderr
    assert text in lines[0], lines[0]


@pytest.fixture
def single_start(tmp_path):
    """A one-frame initial-condition file (its output would be the file itself)."""
    import ase.io

    path = tmp_path / "x.extxyz"
    ase.io.write(path, ase.io.read(INIT, index=0))
    return path


def test_an_output_that_is_an_input_is_refused_and_the_input_kept(single_start, tmp_path):
    before = single_start.read_bytes()
    for args in (["propagate", "--init", single_start, "--duration-fs", "20"],
                 ["predict", "--init", single_start, "--times", "0:10:5"]):
        _one_line_error(_cli(*args, "--out", single_start), "is also an input")
    _one_line_error(_cli("spectrum", single_start, "--out", tmp_path / "s.png", "--csv",
                         single_start), "is also an input")
    assert single_start.read_bytes() == before


def test_a_second_live_writer_is_refused_and_a_dead_ones_lock_taken_over(single_start,
                                                                          tmp_path):
    out = tmp_path / "t.xyz"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = tmp_path / ".t.xyz.lock"
        lock.write_text(f"{holder.pid} {os.uname().nodename} propagate\n")
        result = _cli("predict", "--init", single_start, "--times", "0:10:5", "--out", out)
        _one_line_error(result, f"another gicnet run (pid {holder.pid}")
        assert not out.exists() and lock.exists()
    finally:
        holder.kill()
        holder.wait()
    result = _cli("predict", "--init", single_start, "--times", "0:10:5", "--out", out)
    assert result.exit_code == 0, result.output
    assert out.exists() and not lock.exists()


def test_outputs_appear_together_or_not_at_all(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.png"
    with pytest.raises(RuntimeError):
        with OutputPlan() as plan:
            plan.add(a, "table")
            plan.add(b, "plot")
            plan.staged(a).write_text("done")
            raise RuntimeError("the second output failed late")
    assert sorted(os.listdir(tmp_path)) == []  # no output, no staged file, no lock
    with OutputPlan() as plan:
        for path in (plan.add(a, "table"), plan.add(b, "plot")):
            plan.staged(path).write_text(path.name)
        assert not a.exists()
        plan.commit()
    assert a.read_text() == "a.csv" and sorted(os.listdir(tmp_path)) == ["a.csv", "b.png"]


@pytest.mark.parametrize("path, kind, message", [
    ("missing/out.xyz", "trajectory", "output folder does not exist"),
    (".", "plot", "needs one of the suffixes"),
    ("out.dat", "trajectory", "pass --format"),
    ("out.jpg2", "plot", "needs one of the suffixes"),
])
def test_bad_outputs_are_refused_before_any_work(tmp_path, path, kind, message):
    with pytest.raises(InputError, match=message), OutputPlan() as plan:
        plan.add(tmp_path / path, kind)


def test_a_successful_run_removes_stale_temporaries_of_its_outputs(single_start, tmp_path):
    out = tmp_path / "t.xyz"
    stale = [tmp_path / ".t.xyz.4242.0123456789ab.tmp",
             tmp_path / ".t.gicnet-stage-4242-deadbeef.xyz"]
    other = tmp_path / ".u.xyz.4242.0123456789ab.tmp"
    for path in (*stale, other):
        path.write_text("left by a killed run")
    result = _cli("predict", "--init", single_start, "--times", "0:10:5", "--out", out)
    assert result.exit_code == 0, result.output
    assert not any(p.exists() for p in stale) and other.exists()


def test_evaluate_writes_its_folder_only_when_complete(tmp_path, monkeypatch):
    from gicnet_runtime.analysis import report

    def fail_late(*args, **kwargs):
        raise InputError("the spectrum plot failed")

    from gicnet_runtime import load_model, read_initial_conditions, write_trajectory

    init = read_initial_conditions(INIT)
    (reference,) = load_model(device="cpu").propagate(init.positions[0], init.velocities[0],
                                                      300.0, 0.5)
    ref = write_trajectory(reference, tmp_path / "ref.h5")
    monkeypatch.setattr(report, "_spectra", fail_late)
    out = tmp_path / "eval"
    result = _cli("evaluate", "--reference", ref, "--out", out, "--starts-per-reference", "2",
                  "--long-starts", "1", "--long-duration-fs", "100", "--max-lag-fs", "50")
    _one_line_error(result, "the spectrum plot failed")
    assert sorted(os.listdir(tmp_path)) == ["ref.h5"]


def test_sigterm_saves_a_checkpoint_and_resume_finishes_identically(single_start, tmp_path):
    out = tmp_path / "run.h5"
    cmd = [sys.executable, str(ROOT / "cli.py"), "propagate", "--init", str(single_start),
           "--duration-fs", "20000", "--dt-fs", "1", "--out", str(out), "--device", "cpu",
           "--threads", "1", "--checkpoint-every-s", "1000"]
    env = dict(os.environ, TQDM_DISABLE="1")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    spool = out.with_name(out.name + ".resume.frames")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and not (
            spool.exists() and spool.stat().st_size > 0):
        time.sleep(0.05)
    assert proc.poll() is None, "propagate finished before it could be stopped"
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "--resume" in stderr.strip().splitlines()[-1]
    ckpt = out.with_name(out.name + ".resume.npz")
    assert ckpt.exists() and not out.exists()
    resumed = subprocess.run(cmd + ["--resume"], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert not ckpt.exists() and not spool.exists()
    from gicnet_runtime import load_model, read_initial_conditions

    model = load_model(device="cpu", threads=1)
    init = read_initial_conditions(single_start)
    (reference,) = model.propagate(init.positions, init.velocities, 20000.0, 1.0)
    written = read_trajectory(out)
    np.testing.assert_array_equal(written.positions, reference.positions)
    assert written.info == reference.info

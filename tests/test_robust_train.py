"""`gicnet train` killed with SIGKILL resumes from its last checkpoint and ends with the
weights of an uninterrupted run with the same seed (tiny network, real ethanol MD)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gicnet_runtime.io.formats import write_trajectory

REPO = Path(__file__).resolve().parent.parent
#: Tiny and fast, but long enough (12 epochs of 10 batches) to be killed mid-epoch.
TRAIN_ARGS = ["--epochs", "12", "--hidden", "16,16", "--batch-size", "32", "--energy-epochs",
              "1", "--stride", "8", "--checkpoint-every-s", "0", "--threads", "1",
              "--device", "cpu", "--seed", "3", "--patience", "0"]
#: Where the kill lands: (epoch, batch) of the last checkpoint, mid-epoch.
KILL_AT = (3, 4)


@pytest.fixture(scope="module")
def data_files(short_md, tmp_path_factory):
    folder = tmp_path_factory.mktemp("robust_train")
    return [write_trajectory(t, folder / f"md{i}.h5") for i, t in enumerate(short_md[:3])]


def _train(data_files, out: Path, *extra) -> list[str]:
    return [sys.executable, str(REPO / "cli.py"), "train", *map(str, data_files), "--out",
            str(out), *TRAIN_ARGS, *extra]


def _progress(last: Path) -> tuple[int, int]:
    try:
        saved = torch.load(last, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError):
        return (0, 0)
    return saved["progress"]["epoch"], saved["progress"]["batch"]


def test_sigkilled_training_resumes_to_the_uninterrupted_result(data_files, tmp_path):
    env = dict(os.environ, TQDM_DISABLE="1")
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    proc = subprocess.Popen(_train(data_files, killed), cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = killed / "member_0" / "last.pt"
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if last.exists() and _progress(last) >= KILL_AT:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    epoch, batch = _progress(last)
    assert (epoch, batch) >= KILL_AT and epoch < 12  # killed mid-run, not after it
    assert not (killed / "member_0" / "final.json").exists()

    resumed = subprocess.run(_train(data_files, killed, "--resume"), cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    uninterrupted = subprocess.run(_train(data_files, whole), cwd=REPO, env=env,
                                   capture_output=True, text=True, timeout=300)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-2000:]

    for name in ("last.pt", "best.pt"):
        a = torch.load(killed / "member_0" / name, map_location="cpu", weights_only=True)
        b = torch.load(whole / "member_0" / name, map_location="cpu", weights_only=True)
        assert a["model"].keys() == b["model"].keys()
        for key in a["model"]:
            torch.testing.assert_close(a["model"][key], b["model"][key], rtol=1e-6, atol=1e-7,
                                       msg=f"{name} {key}")
    history = [json.loads((run / "member_0" / "history.json").read_text())
               for run in (killed, whole)]
    assert len(history[0]) == len(history[1]) == 12
    for x, y in zip(*history):
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-6)

"""Validated files: a small file that claims a huge size, deep JSON or pickled objects is
refused in one line, at once, through the API and through the CLI (docs/robustness.md,
"Validated files").

Every test here runs under a time bound (:data:`TIME_BOUND_S`, enforced by an alarm), so
a reader that starts to work for what a file claims fails the test instead of hanging it.
"""

from __future__ import annotations

import ast
import bz2
import gzip
import io
import json
import os
import signal
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings

from gicnet_runtime import jsonsafe
from gicnet_runtime.cli import main
from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.errors import InputError
from gicnet_runtime.io import limits
from gicnet_runtime.io.formats import read_trajectory, write_trajectory
from gicnet_runtime.io.initial import read_initial_conditions
from gicnet_runtime.unroll.checkpoint import load_state
from tests.onnx_fixtures import (
    ETHANOL_MASSES_AMU,
    ETHANOL_POSITIONS_A,
    ETHANOL_Z,
    thermal_velocities,
    write_model,
)
from tests.test_fuzz_readers import CUT, EDITS, _mutated

REPO = Path(__file__).resolve().parent.parent
#: Longest any test here may take, s: generous; every refusal takes milliseconds.
TIME_BOUND_S = 60
#: The count line of the hostile extended XYZ file.
TWO_BILLION = 2_000_000_000
#: Nesting of the hostile JSON: far beyond jsonsafe.MAX_DEPTH and Python's recursion limit.
DEEP = 5000
DEEP_JSON = "[" * DEEP + "]" * DEEP


class _TooSlow(BaseException):
    """Raised by the alarm; a BaseException, so that no reader turns it into InputError."""


@pytest.fixture(autouse=True)
def _time_bound():
    def expire(signum, frame):
        raise _TooSlow(f"took more than {TIME_BOUND_S} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, TIME_BOUND_S)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def _traj(n_frames: int = 2, info: dict | None = None) -> Trajectory:
    velocities = thermal_velocities(1, count=n_frames)
    times = 0.5 * np.arange(n_frames)
    positions = ETHANOL_POSITIONS_A + times[:, None, None] * velocities
    return Trajectory(time_fs=times, positions=positions, velocities=velocities,
                      atomic_numbers=ETHANOL_Z, masses=ETHANOL_MASSES_AMU,
                      potential_energy=-1.0 - 0.01 * times, kinetic_energy=0.1 + 0.0 * times,
                      info=info or {"engine": "test"})


def _replaced(data: bytes, old: bytes, new: bytes) -> bytes:
    assert old in data
    return data.replace(old, new, 1)


def _ulm_item_rewritten(data: bytes, old: bytes, new: bytes) -> bytes:
    """An ASE .traj (ULM) file with ``old`` replaced by ``new`` in the JSON header of its
    first item, the new header appended and the item table pointed at it."""
    _, n_items, table = struct.unpack("<3q", data[24:48])
    offsets = list(struct.unpack(f"<{n_items}q", data[table:table + 8 * n_items]))
    size = struct.unpack("<q", data[offsets[0]:offsets[0] + 8])[0]
    header = _replaced(data[offsets[0] + 8:offsets[0] + 8 + size], old, new)
    offsets[0] = len(data)
    out = bytearray(data + struct.pack("<q", len(header)) + header)
    out[table:table + 8 * n_items] = struct.pack(f"<{n_items}q", *offsets)
    return bytes(out)


def _npz_with(valid: Path, name: str, member: bytes) -> bytes:
    """The npz ``valid`` with its entry ``name`` (e.g. "xyz.npy") replaced by ``member``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(valid) as src, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
        for entry in src.namelist():
            out.writestr(entry, member if entry == name else src.read(entry))
    return buf.getvalue()


def _npy_header(shape: tuple, descr: str = "<f8") -> bytes:
    """A version 1.0 .npy header claiming ``shape``, without the data."""
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    text += " " * (63 - (len(text) + 10) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _entry_size_claimed(data: bytes, name: str, claimed: int) -> bytes:
    """The zip ``data`` with the uncompressed size of entry ``name`` in its central
    directory set to ``claimed``."""
    at = data.index(b"PK\x01\x02")  # central directory entries: name at 46, size at 24
    while data[at + 46:at + 46 + len(name)] != name.encode():
        at = data.index(b"PK\x01\x02", at + 4)
    return data[:at + 24] + struct.pack("<I", claimed) + data[at + 28:]


def _xyz_files(d: Path, valid: dict) -> dict:
    text = valid["extxyz"].read_bytes()
    comment = text.splitlines(keepends=True)[1]
    body = b"".join(text.splitlines(keepends=True)[2:11])
    huge = f"{TWO_BILLION}\n".encode() + comment + body + body[:len(body) // 2]  # 1.5 KB
    info = b'gicnet_info="_JSON {\\"engine\\": \\"test\\"}"'
    files = {"huge_count": huge,
             "deep_comment_json": _replaced(text, info, b'gicnet_info="_JSON {\\"a\\": '
                                            + DEEP_JSON.encode() + b'}"'),
             "deep_hex_json": _replaced(text, info, b"gicnet_info_hex="
                                        + ("{\"a\": " + DEEP_JSON + "}").encode().hex().encode())}
    out = {name: d / f"{name}.extxyz" for name in files}
    for name, data in files.items():
        out[name].write_bytes(data)
    out["huge_count_gz"] = d / "huge_count.xyz.gz"
    out["huge_count_gz"].write_bytes(gzip.compress(huge))
    out["bz2_bomb"] = d / "bomb.xyz.bz2"  # a few dozen bytes that expand to 4 MB
    out["bz2_bomb"].write_bytes(bz2.compress(text[:text.index(b"\n") + 1] + b" " * 2**22))
    return out


def _npz_files(d: Path, valid: dict) -> dict:
    npz = valid["npz"]
    stored = zipfile.ZipFile(npz).getinfo("xyz.npy")
    files = {"huge_npz_array": _npz_with(npz, "xyz.npy", _npy_header((10**6, 10**6, 3))),
             "deep_npz_info": _npz_with(npz, "info.npy", _npy(np.array(DEEP_JSON))),
             "npz_entry_claim": _entry_size_claimed(_npz_with(npz, "xyz.npy", _npy(
                 np.zeros((2, 9, 3)))), "xyz.npy", 2**31)}
    assert stored.file_size < 2**31
    out = {name: d / f"{name}.npz" for name in files}
    for name, data in files.items():
        out[name].write_bytes(data)
    return out


def _h5_files(d: Path, valid: dict) -> dict:
    import h5py

    out = {}
    edits = {
        "unwritten_h5": lambda f: _new_value(f, "position", (10**7, 9, 3)),
        "many_atoms_h5": lambda f: _new_value(f, "position", (2, 2 * limits.MAX_ATOMS, 3)),
        "deep_h5_info": lambda f: f["parameters/gicnet"].attrs.__setitem__("info_json",
                                                                          DEEP_JSON),
        "external_h5": lambda f: _new_value(f, "position", (2, 9, 3),
                                            external=[(str(d / "elsewhere.bin"), 0, 2 * 27 * 8)]),
    }
    (d / "elsewhere.bin").write_bytes(np.zeros(2 * 27).tobytes())
    for name, edit in edits.items():
        out[name] = d / f"{name}.h5"
        out[name].write_bytes(valid["h5"].read_bytes())
        with h5py.File(out[name], "a") as f:
            edit(f)
    return out


def _new_value(f, element: str, shape: tuple, **options) -> None:
    """Replace particles/molecule/ELEMENT/value by an empty dataset of ``shape``."""
    group = f[f"particles/molecule/{element}"]
    del group["value"]
    group.create_dataset("value", shape=shape, dtype="f8", **options)


def _traj_files(d: Path, valid: dict) -> dict:
    data = valid["traj"].read_bytes()
    positions = b'"positions.": {"ndarray": [[9, 3], "float64"'
    info = b'"gicnet_info": {"engine": "test"}'
    files = {
        "huge_traj_array": _ulm_item_rewritten(data, positions,
                                               b'"positions.": {"ndarray": [[9, 10000000000], '
                                               b'"float64"'),
        "deep_traj_json": _ulm_item_rewritten(data, info, b'"gicnet_info": {"a": '
                                              + DEEP_JSON.encode() + b"}"),
        "inline_traj_array": _ulm_item_rewritten(
            data, info, b'"gicnet_info": {"a": {"__ndarray__": [[100000, 100000], "float64", '
                        b"[0]]}}"),
        "traj_item_count": data[:32] + struct.pack("<q", 10**15) + data[40:],
    }
    out = {name: d / f"{name}.traj" for name in files}
    for name, data in files.items():
        out[name].write_bytes(data)
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("validated_files")
    valid = {kind: write_trajectory(_traj(), d / f"valid.{kind}")
             for kind in ("extxyz", "npz", "h5", "traj")}
    out = {"model": write_model(d / "model.onnx"), "init": valid["extxyz"], **valid}
    for make in (_xyz_files, _npz_files, _h5_files, _traj_files):
        out.update(make(d, valid))
    return out


#: Hostile files -> a fragment of the one-line message (API and CLI).
CASES = {
    "huge_count": f"frame 0 claims {TWO_BILLION} atoms, but only",
    "huge_count_gz": f"frame 0 claims {TWO_BILLION} atoms, but only",
    "bz2_bomb": f"bytes ({limits.MAX_EXPANSION} times its size)",
    "deep_comment_json": f"the JSON value of gicnet_info nests arrays and objects {DEEP + 1} "
                         "levels deep, more than the limit of 64",
    "deep_hex_json": "gicnet_info_hex nests arrays and objects",
    "huge_npz_array": "npz array 'xyz' claims shape (1000000, 1000000, 3) of float64",
    "deep_npz_info": "npz 'info' nests arrays and objects 5000 levels deep",
    "npz_entry_claim": "npz entry 'xyz.npy' claims 2147483648 bytes from",
    "unwritten_h5": "H5MD dataset /particles/molecule/position/value claims shape "
                    "(10000000, 9, 3) (2160000000 bytes), but the file stores 0 bytes of it",
    "many_atoms_h5": "H5MD particles position has 2000000 atoms, more than the 1000000",
    "deep_h5_info": "parameters/gicnet info_json nests arrays and objects 5000 levels deep",
    "external_h5": "keeps its data in other files, which gicnet does not read",
    "huge_traj_array": "item 0 array positions of shape (9, 10000000000) lies at bytes",
    "deep_traj_json": "the header of item 0 nests arrays and objects",
    "inline_traj_array": "item 0 holds an inline array of shape (100000, 100000)",
    "traj_item_count": "the table of 1000000000000000 items lies at bytes",
}
#: The cases of the trajectory readers (no compressed files) and of the initial-condition
#: reader (--init: any file ASE reads; provenance is not read).
TRAJECTORY_CASES = [c for c in CASES if c not in ("huge_count_gz", "bz2_bomb")]
INIT_CASES = [c for c in CASES if c != "deep_hex_json"]


def _one_line_error(call, fragment: str) -> str:
    with pytest.raises(InputError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and fragment in message, message
    return message


@pytest.mark.parametrize("case", TRAJECTORY_CASES)
def test_api_refuses_hostile_trajectory_files(files, case):
    message = _one_line_error(lambda: read_trajectory(files[case]), CASES[case])
    assert message.startswith(str(files[case]))


@pytest.mark.parametrize("case", INIT_CASES)
def test_api_refuses_hostile_initial_conditions(files, case):
    _one_line_error(lambda: read_initial_conditions(files[case]), CASES[case])


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _assert_one_line_and_nothing_written(result, fragment: str, folder: Path,
                                         left: tuple[str, ...] = ()) -> None:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gicnet: error: "), result.stderr
    assert fragment in lines[0], lines[0]
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    assert sorted(p.name for p in folder.iterdir()) == sorted(left), "an output was written"


@pytest.mark.parametrize("command", ["predict", "propagate"])
@pytest.mark.parametrize("case", INIT_CASES)
def test_cli_refuses_hostile_initial_conditions(files, tmp_path, command, case):
    out = tmp_path / "out.h5"
    timing = ["--times", "0:10:5"] if command == "predict" else ["--duration-fs", 10,
                                                                  "--dt-fs", 1]
    result = _cli(command, "--model", files["model"], "--init", files[case], *timing,
                  "--device", "cpu", "--out", out)
    _assert_one_line_and_nothing_written(result, CASES[case], tmp_path)


@pytest.mark.parametrize("case", TRAJECTORY_CASES)
def test_cli_spectrum_refuses_hostile_trajectory_files(files, tmp_path, case):
    result = _cli("spectrum", files[case], "--out", tmp_path / "spectrum.png")
    _assert_one_line_and_nothing_written(result, CASES[case], tmp_path)


def test_two_billion_atoms_are_refused_at_once_by_a_real_process(files, tmp_path):
    # A subprocess with a timeout: before the check, ASE's frame scan ran for hours.
    out = tmp_path / "out.h5"
    cmd = [sys.executable, str(REPO / "cli.py"), "predict", "--model", str(files["model"]),
           "--init", str(files["huge_count"]), "--times", "0:10:5", "--device", "cpu",
           "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=TIME_BOUND_S, env=env)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines() == [
        f"gicnet: error: {files['huge_count']}: frame 0 claims {TWO_BILLION} atoms, but only "
        f"{files['huge_count'].stat().st_size - len(str(TWO_BILLION)) - 1} bytes follow (an "
        f"atom line takes at least {limits.MIN_XYZ_ATOM_LINE_CHARS} bytes)"]
    assert not out.exists()


# --- the propagate checkpoint ------------------------------------------------------------


def _checkpoint(files, out: Path) -> Path:
    """A real checkpoint of `gicnet propagate` for output ``out``."""
    from gicnet_runtime.core.model import load_model
    from gicnet_runtime.unroll.checkpoint import PropagateCheckpoint, checkpoint_path

    saver = PropagateCheckpoint(checkpoint_path(out), every_s=0.0)
    load_model(files["model"], device="cpu").propagate(
        ETHANOL_POSITIONS_A, thermal_velocities(0), 30.0, 1.0, checkpoint=saver)
    return saver.path


def _rewritten_npz(path: Path, **arrays) -> None:
    with np.load(path, allow_pickle=False) as data:
        saved = {name: data[name] for name in data.files}
    saved.update(arrays)
    with open(path, "wb") as fh:
        np.savez(fh, **saved)


def _header(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as data:
        return json.loads(str(data["header"]))


def test_api_refuses_a_checkpoint_with_a_deep_header(files, tmp_path):
    path = _checkpoint(files, tmp_path / "run.h5")
    _rewritten_npz(path, header=np.array(DEEP_JSON))
    _one_line_error(lambda: load_state(path, "key"),
                    f"checkpoint header nests arrays and objects {DEEP} levels deep")


def test_api_refuses_a_checkpoint_that_claims_more_than_it_holds(files, tmp_path):
    # UnrollState allocates (members, B, width, N, 3) from the header's member count.
    # The digest is recomputed, as a deliberate tamperer would: the size check still holds.
    from gicnet_runtime.unroll.checkpoint import content_digest

    path = _checkpoint(files, tmp_path / "run.h5")
    header = {**_header(path), "n_members": 10**9}
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files if name != "header"}
    header["digest"] = content_digest(header, arrays)
    _rewritten_npz(path, header=np.array(json.dumps(header)))
    _one_line_error(lambda: load_state(path, header["fingerprint"]),
                    "checkpoint claims predictions of shape (1000000000, 1,")


def test_cli_resume_refuses_a_checkpoint_with_a_deep_header(files, tmp_path):
    out = tmp_path / "run.h5"
    path = _checkpoint(files, out)
    _rewritten_npz(path, header=np.array(DEEP_JSON))
    result = _cli("propagate", "--model", files["model"], "--init", files["init"],
                  "--duration-fs", 10, "--dt-fs", 1, "--device", "cpu", "--out", out,
                  "--resume")
    _assert_one_line_and_nothing_written(result, "checkpoint header nests arrays and objects",
                                         tmp_path, left=(path.name,))


# --- training: pickled checkpoints and deep JSON in a run folder --------------------------


class Pickled:
    """An object only a full unpickler would rebuild."""


def _pickled_object(path: Path) -> None:
    import torch

    torch.save(Pickled(), path)


def _dict_with_an_object(path: Path) -> None:
    import torch

    torch.save({"model": {"w": torch.zeros(2)}, "extra": Pickled()}, path)


def _plain_pickle(path: Path) -> None:
    import pickle  # a hostile file of the test's own making

    path.write_bytes(pickle.dumps({"model": Pickled()}))


PT_CASES = {
    "pickled_object": (_pickled_object, "it holds pickled objects (Unsupported global: GLOBAL "
                                        "tests.test_validated_files.Pickled"),
    "dict_with_an_object": (_dict_with_an_object, "which gicnet does not load"),
    "plain_pickle": (_plain_pickle, "not a torch checkpoint (a zip archive"),
}
#: The training settings of the run folders: small, so that resuming takes seconds.
TINY = {"model": {"hidden": [8], "n_basis": 4}, "energy": {"hidden": [8], "epochs": 1},
        "epochs": 1, "batch_size": 64, "warmup_steps": 1, "stride": 4, "patience": 0}


def _run_dir(root: Path) -> tuple[Path, Path]:
    """A training run interrupted in member 0 (run.json, the energy model, final.json of
    member 0, its checkpoints) and its settings file; returns (run folder, settings)."""
    from gicnet_train import checkpoint as ckpt
    from gicnet_train.config import load_config
    from gicnet_train.energy import EnergyModel
    from gicnet_train.icbuild import build_icdef

    settings = root / "tiny.json"
    settings.write_text(json.dumps(TINY))
    cfg = load_config(settings)
    icdef = build_icdef(ETHANOL_POSITIONS_A, np.array(ETHANOL_Z), np.array(ETHANOL_MASSES_AMU))
    run = root / "run"
    ckpt.write_json({"config": cfg.to_dict(), "ic_rows": [list(r) for r in icdef.rows],
                     "atomic_numbers": list(ETHANOL_Z), "masses_amu": list(ETHANOL_MASSES_AMU),
                     "sources": [], "train_trajectories": [0], "val_trajectories": [1],
                     "provenance": {}}, run / "run.json")
    energy = EnergyModel(len(ETHANOL_Z), cfg.energy.hidden)
    ckpt.save({"model": energy.state_dict()}, run / "energy" / "model.pt")
    validation = {f"{t}_rmse": 0.1 for t in ("bond", "angle", "dihedral")}
    ckpt.write_json({"validation": validation}, run / "member_0" / "final.json")
    return run, settings


def _train_group():
    from gicnet_train.cli import export, train

    return type(main)("gicnet", commands=[train, export])


def _train_cli(*args):
    return CliRunner().invoke(_train_group(), [str(a) for a in args])


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("case", PT_CASES)
def test_api_refuses_pickled_checkpoints(tmp_path, case):
    from gicnet_train import checkpoint as ckpt

    make, fragment = PT_CASES[case]
    make(tmp_path / "x.pt")
    _one_line_error(lambda: ckpt.load(tmp_path / "x.pt"), fragment)


@pytest.mark.parametrize("case", PT_CASES)
def test_export_refuses_a_pickled_checkpoint(tmp_path, case):
    make, fragment = PT_CASES[case]
    run, _ = _run_dir(tmp_path)
    make(run / "member_0" / "best.pt")
    before = _listing(tmp_path)
    result = _train_cli("export", run, "--out", tmp_path / "out")
    _assert_one_line_and_nothing_written(result, fragment, tmp_path, left=("run", "tiny.json"))
    assert _listing(tmp_path) == before


@pytest.mark.parametrize("checkpoint", ["member_0/last.pt", "energy/model.pt"])
def test_train_resume_refuses_a_pickled_checkpoint(tmp_path, checkpoint):
    run, settings = _run_dir(tmp_path)
    (run / "member_0" / "final.json").unlink()  # member 0 is still training
    _pickled_object(run / checkpoint)
    data = tmp_path / "data"
    data.mkdir()
    for k in range(2):
        write_trajectory(_traj(n_frames=41), data / f"md_{k}.h5")
    result = _train_cli("train", data, "--out", run, "--config", settings, "--resume",
                        "--device", "cpu")
    fragment = f"cannot read checkpoint {run / checkpoint}: {PT_CASES['pickled_object'][1]}"
    _assert_one_line_and_nothing_written(result, fragment, tmp_path,
                                         left=("data", "run", "tiny.json"))


@pytest.mark.parametrize("name", ["run.json", "member_0/final.json"])
def test_export_refuses_deep_json_in_the_run_folder(tmp_path, name):
    run, _ = _run_dir(tmp_path)
    (run / "member_0" / "best.pt").write_bytes(b"")  # never read: the JSON comes first
    (run / name).write_text(DEEP_JSON)
    result = _train_cli("export", run, "--out", tmp_path / "out")
    _assert_one_line_and_nothing_written(result, f"{name} nests arrays and objects {DEEP} "
                                         "levels deep", tmp_path, left=("run", "tiny.json"))


def test_train_refuses_a_hostile_data_file(files, tmp_path):
    result = _train_cli("train", files["huge_count"], files["extxyz"], "--out", tmp_path / "run",
                        "--device", "cpu")
    _assert_one_line_and_nothing_written(result, CASES["huge_count"], tmp_path)


FUZZ = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def valid_checkpoints(files, tmp_path_factory) -> dict[str, bytes]:
    """A training checkpoint as gicnet writes it (model, optimizer, progress) and a
    propagate checkpoint with its key."""
    import torch

    from gicnet_train import checkpoint as ckpt

    d = tmp_path_factory.mktemp("valid_checkpoints")
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    ckpt.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
               "progress": {"epoch": 1, "best_loss": float("inf"), "history": [{"loss": 1.0}]}},
              d / "last.pt")
    propagate = _checkpoint(files, d / "run.h5")
    return {"last.pt": (d / "last.pt").read_bytes(), "resume.npz": propagate.read_bytes(),
            "key": _header(propagate)["fingerprint"]}


def _only_input_errors(call) -> None:
    try:
        call()
    except InputError as err:
        assert "\n" not in str(err)


@FUZZ
@given(edits=EDITS, cut=CUT)
def test_mutated_training_checkpoints_give_one_line_errors(valid_checkpoints, tmp_path, edits,
                                                           cut):
    from gicnet_train import checkpoint as ckpt

    path = tmp_path / "mutated.pt"
    path.write_bytes(_mutated(valid_checkpoints["last.pt"], edits, cut))
    _only_input_errors(lambda: ckpt.load(path))


@FUZZ
@given(edits=EDITS, cut=CUT)
def test_mutated_propagate_checkpoints_give_one_line_errors(valid_checkpoints, tmp_path, edits,
                                                            cut):
    # With the right key, so that a file that still parses reaches the state's checks.
    path = tmp_path / "mutated.resume.npz"
    path.write_bytes(_mutated(valid_checkpoints["resume.npz"], edits, cut))
    _only_input_errors(lambda: load_state(path, valid_checkpoints["key"]))


# --- jsonsafe ------------------------------------------------------------------------------


def _reference_depth(value) -> int:
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return 1 + max((_reference_depth(v) for v in value), default=0)
    return 0


@pytest.mark.parametrize("value", [
    1, "[{", [], {}, [[1, "]]]"]], {"a\\\"[": [{"b": []}]}, [[[[[]]]], "\\\\"], ["\"[" * 3],
])
def test_depth_counts_structure_not_strings(value):
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False), json.dumps(value,
                                                                                     indent=2)):
        assert jsonsafe.depth(text) == jsonsafe.depth(text.encode()) == _reference_depth(value)


def test_depth_carries_strings_and_escapes_across_blocks(monkeypatch):
    monkeypatch.setattr(jsonsafe, "_BLOCK_BYTES", 3)
    value = {"k\\\\\"[[": [["]\\\"", {"x": [1]}]], "y": "\\"}
    assert jsonsafe.depth(json.dumps(value)) == _reference_depth(value) == 5


def test_loads_refuses_before_json_recurses():
    for text, fragment in [("[" * 10**6, "nests arrays and objects 1000000 levels deep"),
                           ("{\"a\": " * 100 + "1" + "}" * 100, "100 levels deep"),
                           ("[1]" + " " * 10, "more than the limit of 12 bytes"),
                           ("{\"a\": ", "is not valid JSON"), (b"\xff\xfe\x00", "not Unicode"),
                           (5, "is not text (got int)")]:
        _one_line_error(lambda: jsonsafe.loads(text, max_bytes=12 if text == "[1]" + " " * 10
                                               else jsonsafe.MAX_BYTES), fragment)
    assert jsonsafe.loads(b'{"a": [1, "\\u005b"]}') == {"a": [1, "["]}


def test_unterminated_strings_cost_linear_time():
    # A quote-by-quote regex would take hours on this (every escaped quote restarts it).
    text = '"' + '\\"' * (jsonsafe.MAX_BYTES // 2 - 1)
    assert jsonsafe.depth(text) == 0
    _one_line_error(lambda: jsonsafe.loads(text), "is not valid JSON")


def test_read_checks_the_size_before_reading(tmp_path):
    path = tmp_path / "big.json"
    with open(path, "wb") as fh:
        fh.truncate(jsonsafe.MAX_BYTES + 1)  # sparse: no data to read
    _one_line_error(lambda: jsonsafe.read(path), f"more than the limit of {jsonsafe.MAX_BYTES}")
    # A device reports no size and never ends: at most one byte too many is read.
    _one_line_error(lambda: jsonsafe.read("/dev/zero"), "more than the limit")


# --- the audit: every loader of user files goes through the checks -------------------------


SOURCES = sorted([*REPO.glob("gicnet_runtime/**/*.py"), *REPO.glob("gicnet_train/**/*.py")])
#: (file, function) -> why a call there is not a user file or where it is still to be routed.
JSON_ALLOWED = {
    ("gicnet_runtime/jsonsafe.py", "loads"): "the bounded parser itself",
    ("gicnet_runtime/io/ase_formats.py", "write_traj_blocks"): "round trip of gicnet's own data",
    ("gicnet_train/config.py", "to_dict"): "round trip of gicnet's own data",
    ("gicnet_train/config.py", "read_settings"): "to route through jsonsafe.read (its owner)",
    ("gicnet_runtime/core/description.py", "_parsed"): "model metadata: to route through "
                                                        "jsonsafe.loads (its owner)",
}
ASE_READ_ALLOWED = {
    ("gicnet_runtime/io/ase_formats.py", "read_frames"): "the validated ASE reader",
    ("gicnet_runtime/reference/simulate.py", "load_molecule"): "to route through read_frames",
}


def _calls_by_function(path: Path):
    """(function name, call) for every call in ``path``, named by the innermost function."""
    tree = ast.parse(path.read_text())
    for function in ast.walk(tree):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(function):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    yield function, node


def _loader_calls():
    for path in SOURCES:
        where = path.relative_to(REPO).as_posix()
        for function, call in _calls_by_function(path):
            name = f"{ast.unparse(call.func.value)}.{call.func.attr}"
            yield where, function, name


def test_json_from_files_is_parsed_by_jsonsafe_only():
    found = {(where, f.name) for where, f, name in _loader_calls()
             if name in ("json.loads", "json.load")}
    assert ("gicnet_runtime/jsonsafe.py", "loads") in found  # the audit sees calls
    assert found - set(JSON_ALLOWED) == set()


def test_npz_files_are_checked_before_numpy_loads_them():
    loaders = [(where, function) for where, function, name in _loader_calls()
               if name in ("np.load", "numpy.load")]
    assert {w for w, _ in loaders} >= {"gicnet_runtime/io/mlatom_npz.py",
                                       "gicnet_runtime/unroll/checkpoint.py"}
    for where, function in loaders:
        called = {ast.unparse(c.func) for c in ast.walk(function) if isinstance(c, ast.Call)}
        assert called & {"check_npz", "limits.check_npz"}, f"{where}::{function.name}"


def test_ase_and_torch_read_user_files_in_one_place_each():
    ase_reads = {(w, f.name) for w, f, name in _loader_calls()
                 if name in ("ase_io.read", "ase.io.read")}
    torch_loads = {(w, f.name) for w, f, name in _loader_calls() if name == "torch.load"}
    assert ("gicnet_runtime/io/ase_formats.py", "read_frames") in ase_reads
    assert ase_reads - set(ASE_READ_ALLOWED) == set()
    assert torch_loads == {("gicnet_train/checkpoint.py", "load")}

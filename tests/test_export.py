"""ONNX export: the graph is checked, self-describing, free of training nodes, and gives
what the torch model gives (positions, velocities, energies) for any batch and time grid."""

import dataclasses
import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from cli import main as cli_main
from gicnet_runtime.core.description import SINGLE_FORMAT_VERSION, ModelDescription
from gicnet_runtime.core.model import load_model
from gicnet_train.config import EnergyTrainConfig, TrainConfig
from gicnet_train.export import INPUTS, OPSET, OUTPUTS, export_member, export_run
from gicnet_train.fit import fit, load_member
from gicnet_train.model import ModelConfig

#: A quickly trained run: the weights only need to be generic, not good.
QUICK = TrainConfig(model=ModelConfig(hidden=(48, 32)),
                    energy=EnergyTrainConfig(hidden=(16,), epochs=2, frame_stride=8),
                    epochs=1, batch_size=128, stride=10, times_per_pair=2, seed=5)
#: Ops that only training graphs hold.
TRAINING_OPS = {"Dropout", "SoftmaxCrossEntropyLoss", "NegativeLogLikelihoodLoss", "Gradient",
                "BatchNormalization"}


@pytest.fixture(scope="module")
def run_dir(short_md, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    fit(short_md, out, QUICK, n_members=2, device="cpu", progress=False)
    return out


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    paths = [p for p, _ in export_run(run_dir, folder, layout="members")]
    return folder, paths


def test_export_writes_every_member_and_passes_the_checker(exported):
    folder, paths = exported
    assert [p.name for p in paths] == ["member_0.onnx", "member_1.onnx"]
    for path in paths:
        proto = onnx.load(path)
        onnx.checker.check_model(proto, full_check=True)
        assert [i.name for i in proto.graph.input] == list(INPUTS)
        assert [o.name for o in proto.graph.output] == list(OUTPUTS)
        assert not {n.op_type for n in proto.graph.node} & TRAINING_OPS
        # Constants are folded at export; only the default opset remains.
        assert "Constant" not in {n.op_type for n in proto.graph.node}
        assert [(o.domain, o.version) for o in proto.opset_import] == [("", OPSET)]
        assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_metadata_describes_the_model(exported, run_dir, short_md):
    path = exported[1][1]
    meta = ort.InferenceSession(str(path)).get_modelmeta().custom_metadata_map
    desc = ModelDescription.from_metadata(meta)
    run = json.loads((run_dir / "run.json").read_text())
    assert desc.format_version == SINGLE_FORMAT_VERSION and desc.n_members is None
    assert list(desc.atomic_numbers) == short_md[0].atomic_numbers.tolist()
    np.testing.assert_allclose(desc.masses_amu, short_md[0].masses)
    assert [list(r) for r in desc.ic_rows] == run["ic_rows"]
    assert desc.tc_fs == 10.0 and desc.has_energy
    assert desc.head == "basis" and desc.n_basis == QUICK.model.n_basis
    assert "gicnet.unroll_segment_fs" not in meta and desc.default_segment_fs == 10.0
    assert desc.provenance["member"] == 1 and desc.provenance["seed"] == QUICK.seed + 1000
    assert desc.provenance["data"]["engine"] == "gfn2"
    assert desc.validation["bond_rmse"] > 0
    assert json.loads(meta["gicnet.units"])["positions"] == "angstrom"


@pytest.mark.parametrize("batch, times", [
    (1, [0.0]),
    (3, [0.0, 2.5, 10.0]),
    (7, [9.0, 0.5, 4.25, 0.0, 7.0]),  # unsorted
    (16, list(np.linspace(0.0, 10.0, 21))),
    (32, list(np.linspace(0.0, 10.0, 200))),  # the basis head: 200 times, one network pass
])
def test_onnxruntime_matches_torch(run_dir, exported, short_md, batch, times):
    model, energy, _ = load_member(run_dir, 0)
    traj = short_md[2]
    frames = np.linspace(0, traj.n_frames - 1, batch).astype(int)
    pos = torch.tensor(traj.positions[frames], dtype=torch.float32)
    vel = torch.tensor(traj.velocities[frames], dtype=torch.float32)
    t = torch.tensor(np.tile(times, (batch, 1)), dtype=torch.float32)
    with torch.no_grad():
        ref_pos, ref_vel = model(pos, vel, t)
        ref_energy = energy(ref_pos)
    session = ort.InferenceSession(str(exported[1][0]), providers=["CPUExecutionProvider"])
    got = session.run(list(OUTPUTS), {"positions": pos.numpy(), "velocities": vel.numpy(),
                                      "times": t.numpy()})
    torch.testing.assert_close(torch.from_numpy(got[0]), ref_pos, rtol=0, atol=2e-5)
    torch.testing.assert_close(torch.from_numpy(got[1]), ref_vel, rtol=0, atol=2e-6)
    torch.testing.assert_close(torch.from_numpy(got[2]), ref_energy, rtol=0, atol=2e-4)


def test_different_times_per_row(run_dir, exported, short_md):
    """Each initial condition may ask for its own times (B, K)."""
    traj = short_md[0]
    pos = traj.positions[[0, 100]].astype(np.float32)
    vel = traj.velocities[[0, 100]].astype(np.float32)
    times = np.array([[1.0, 3.0], [6.0, 9.5]], dtype=np.float32)
    session = ort.InferenceSession(str(exported[1][0]), providers=["CPUExecutionProvider"])
    both = session.run(["positions_t"], {"positions": pos, "velocities": vel, "times": times})[0]
    for row in range(2):
        one = session.run(["positions_t"], {"positions": pos[row:row + 1],
                                            "velocities": vel[row:row + 1],
                                            "times": times[row:row + 1]})[0]
        np.testing.assert_allclose(both[row], one[0], rtol=0, atol=1e-5)


def test_export_of_a_missing_member_is_a_clear_error(run_dir, tmp_path):
    from gicnet_runtime.errors import InputError

    with pytest.raises(InputError, match="no trained member 5"):
        export_member(run_dir, tmp_path / "m.onnx", member=5)
    assert not (tmp_path / "m.onnx").exists()


def test_cli_export_then_info(run_dir, tmp_path):
    from click.testing import CliRunner

    runner = CliRunner()
    result = runner.invoke(cli_main, ["export", str(run_dir), "--out", str(tmp_path / "one.onnx"),
                                      "--member", "1", "--unroll-segment-fs", "5"])
    assert result.exit_code == 0, result.output
    info = runner.invoke(cli_main, ["info", "--model", str(tmp_path / "one.onnx")])
    assert info.exit_code == 0 and "tc_fs: 10" in info.output and "atoms (9)" in info.output
    assert "unroll_segment_fs: 5" in info.output
    model = load_model(tmp_path / "one.onnx", device="cpu")
    assert model.description.default_segment_fs == 5.0
    assert model.segment_count(20.0, 1.0) == 4
    assert "energy restoration: 1 of the deficit at the segment end (not in the metadata)" \
        in info.output
    result = runner.invoke(cli_main, ["export", str(run_dir), "--out", str(tmp_path / "r.onnx"),
                                      "--member", "1", "--restore-fraction", "0.3",
                                      "--restore-deficit", "mean", "--reversal-share", "0.4"])
    assert result.exit_code == 0, result.output
    desc = load_model(tmp_path / "r.onnx", device="cpu").description
    assert (desc.unroll_restore_fraction, desc.unroll_restore_deficit) == (0.3, "mean")
    assert desc.reversal_share == 0.4
    info = runner.invoke(cli_main, ["info", "--model", str(tmp_path / "r.onnx")])
    assert "energy restoration: 0.3 of the deficit over the segment" in info.output
    assert "time-reversal correction: 0.4 of the round-trip defect" in info.output
    for bad in (["--restore-fraction", "0"], ["--restore-fraction", "1.5"],
                ["--restore-deficit", "start"], ["--reversal-share", "-0.1"],
                ["--reversal-share", "1.5"]):
        result = runner.invoke(cli_main, ["export", str(run_dir), "--out",
                                          str(tmp_path / "bad.onnx"), "--member", "1", *bad])
        assert result.exit_code == 2 and not (tmp_path / "bad.onnx").exists()


@pytest.mark.parametrize("segment_fs", [0.0, 12.0])
def test_export_refuses_a_segment_longer_than_tc(run_dir, tmp_path, segment_fs):
    from gicnet_runtime.errors import InputError

    with pytest.raises(InputError, match="segment length must lie in"):
        export_member(run_dir, tmp_path / "m.onnx", member=1, unroll_segment_fs=segment_fs)
    assert not (tmp_path / "m.onnx").exists()


def test_exported_model_runs_in_a_process_without_torch(exported, short_md):
    """The file needs nothing but onnxruntime: torch is made unimportable."""
    folder, _ = exported
    pos = short_md[1].positions[:2].tolist()
    vel = short_md[1].velocities[:2].tolist()
    script = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any import of torch now fails
        import numpy as np
        from gicnet_runtime.core.model import load_model
        model = load_model({str(folder)!r}, device="cpu")
        out = model.predict(np.array({pos}), np.array({vel}), [0.0, 5.0])
        print(float(np.abs(out.positions[:, 0] - np.array({pos})).max()))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) < 1e-5  # t = 0 returns the input positions


def test_runtime_ensemble_predicts_like_torch(run_dir, exported, short_md):
    folder, _ = exported
    model = load_model(folder, device="cpu")
    traj = short_md[3]
    times = [2.0, 8.0]
    select = model.predict(traj.positions[:4], traj.velocities[:4], times, ensemble="select")
    mean = model.predict(traj.positions[:4], traj.velocities[:4], times)
    torch_members = [load_member(run_dir, k)[0] for k in range(model.n_members)]
    for b in range(4):
        with torch.no_grad():
            refs = [m(torch.tensor(traj.positions[b:b + 1], dtype=torch.float32),
                      torch.tensor(traj.velocities[b:b + 1], dtype=torch.float32),
                      torch.tensor([times]))[0][0].numpy() for m in torch_members]
        np.testing.assert_allclose(select.positions[b], refs[int(select.member[b])], rtol=0,
                                   atol=2e-5)
        np.testing.assert_allclose(mean.positions[b], np.mean(refs, axis=0), rtol=0, atol=2e-5)


def test_time_head_exports_and_matches_torch(short_md, tmp_path):
    """The paper's head (kept for comparison) still exports and agrees with torch."""
    cfg = dataclasses.replace(QUICK, model=dataclasses.replace(QUICK.model, head="time"))
    fit(short_md, tmp_path / "run", cfg, n_members=1, device="cpu", progress=False)
    (path, desc), = export_run(tmp_path / "run", tmp_path / "m.onnx")
    assert desc.head == "time" and desc.n_basis is None
    model, energy, _ = load_member(tmp_path / "run", 0)
    traj = short_md[1]
    pos = torch.tensor(traj.positions[[0, 300, 900]], dtype=torch.float32)
    vel = torch.tensor(traj.velocities[[0, 300, 900]], dtype=torch.float32)
    t = torch.tensor([[0.0, 2.5, 10.0]] * 3)
    with torch.no_grad():
        ref_pos, ref_vel = model(pos, vel, t)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        ["positions_t", "velocities_t"], {"positions": pos.numpy(), "velocities": vel.numpy(),
                                          "times": t.numpy()})
    torch.testing.assert_close(torch.from_numpy(got[0]), ref_pos, rtol=0, atol=2e-5)
    torch.testing.assert_close(torch.from_numpy(got[1]), ref_vel, rtol=0, atol=2e-6)


def test_export_refuses_a_member_without_a_finite_validation_result(run_dir, tmp_path):
    from gicnet_runtime.errors import InputError

    broken = tmp_path / "run"
    shutil.copytree(run_dir, broken)
    final = json.loads((broken / "member_0" / "final.json").read_text())
    final["validation"]["bond_rmse"] = float("nan")
    (broken / "member_0" / "final.json").write_text(json.dumps(final))
    with pytest.raises(InputError, match="no finite validation result"):
        export_member(broken, tmp_path / "m.onnx", member=0)
    (broken / "member_1" / "final.json").unlink()
    with pytest.raises(InputError, match="has no validation result"):
        export_member(broken, tmp_path / "m.onnx", member=1)
    assert not (tmp_path / "m.onnx").exists()


def test_exporting_an_ensemble_folder_removes_members_of_an_earlier_export(run_dir, tmp_path):
    """A folder is loaded as one ensemble: a stale member_5.onnx from another run would
    silently join it."""
    shutil.copy(export_run(run_dir, tmp_path / "first", layout="members")[0][0],
                tmp_path / "member_5.onnx")
    paths = [p.name for p, _ in export_run(run_dir, tmp_path, layout="members")]
    assert sorted(p.name for p in tmp_path.glob("*.onnx")) == sorted(paths)
    assert load_model(tmp_path, device="cpu").n_members == 2
    # The ensemble layout replaces the member files by one ensemble file, and back.
    assert [p.name for p, _ in export_run(run_dir, tmp_path)] == ["ensemble.onnx"]
    assert [p.name for p in tmp_path.glob("*.onnx")] == ["ensemble.onnx"]
    assert load_model(tmp_path, device="cpu").n_members == 2
    export_run(run_dir, tmp_path, layout="members")
    assert sorted(p.name for p in tmp_path.glob("*.onnx")) == sorted(paths)

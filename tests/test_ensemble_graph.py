"""Ensemble files (gicnet_train/ensemble_graph.py, format version 2): one graph for all
members, against the members' own files, in onnxruntime and through the runtime."""

import dataclasses
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from gicnet_runtime.core.description import ENSEMBLE_FORMAT_VERSION, ModelDescription
from gicnet_runtime.core.model import load_model
from gicnet_train.export import export_run
from gicnet_train.fit import fit
from tests.test_export import QUICK, run_dir  # noqa: F401 (the 2-member run fixture)

#: Member files and the ensemble file run the same float32 arithmetic per member in a
#: different graph; they agree to float32 rounding of lab-frame positions (a few Å).
POSITION_TOL_A = 1e-6
VELOCITY_TOL_A_PER_FS = 1e-7
ENERGY_TOL_EV = 1e-4
CPU = ["CPUExecutionProvider"]


@pytest.fixture(scope="module")
def layouts(run_dir, tmp_path_factory):  # noqa: F811
    """(folder of member files, ensemble file) of the same two members."""
    members = tmp_path_factory.mktemp("members")
    export_run(run_dir, members, layout="members")
    ensemble = tmp_path_factory.mktemp("ensemble")
    (path, _), = export_run(run_dir, ensemble)
    return members, path


def _feed(traj, rows, times):
    return {"positions": traj.positions[rows].astype(np.float32),
            "velocities": traj.velocities[rows].astype(np.float32),
            "times": np.broadcast_to(np.asarray(times, np.float32),
                                     (len(rows), len(times))).copy()}


def _assert_close(stacked, per_member):
    for m, outs in enumerate(per_member):
        np.testing.assert_allclose(stacked[0][m], outs[0], rtol=0, atol=POSITION_TOL_A)
        np.testing.assert_allclose(stacked[1][m], outs[1], rtol=0, atol=VELOCITY_TOL_A_PER_FS)
        np.testing.assert_allclose(stacked[2][m], outs[2], rtol=0, atol=ENERGY_TOL_EV)


def test_ensemble_file_is_described_and_checked(layouts, run_dir):  # noqa: F811
    _, path = layouts
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    desc = ModelDescription.from_metadata({p.key: p.value for p in proto.metadata_props})
    assert desc.n_members == 2 and desc.format_version == ENSEMBLE_FORMAT_VERSION
    finals = [json.loads((run_dir / f"member_{k}" / "final.json").read_text())["validation"]
              for k in range(2)]
    assert [v["bond_rmse"] for v in desc.member_validation] == [f["bond_rmse"] for f in finals]
    assert desc.validation["bond_rmse"] == pytest.approx(np.mean([f["bond_rmse"] for f in finals]))
    assert len(desc.provenance["seeds"]) == 2


@pytest.mark.parametrize(("rows", "times"), [
    ([0], [0.0]), ([0, 50, 100], [0.0, 2.5, 10.0]),
    (list(range(0, 700, 10)), np.linspace(0.0, 10.0, 200))])
def test_ensemble_file_equals_the_member_files(layouts, short_md, rows, times):
    members, path = layouts
    feed = _feed(short_md[1], rows, times)
    stacked = ort.InferenceSession(str(path), providers=CPU).run(None, feed)
    assert stacked[0].shape == (2, len(rows), len(times), 9, 3)
    per_member = [ort.InferenceSession(str(members / f"member_{k}.onnx"), providers=CPU)
                  .run(None, feed) for k in range(2)]
    _assert_close(stacked, per_member)


def test_stacked_graph_shares_the_geometry(layouts):
    """The ensemble graph runs the coordinate transforms once: about one member's nodes,
    not two members' (measured: +4 %)."""
    members, path = layouts
    n_member = len(onnx.load(members / "member_0.onnx").graph.node)
    assert len(onnx.load(path).graph.node) < 1.15 * n_member


@pytest.mark.parametrize("ensemble", ["mean", "select"])
def test_runtime_gives_the_same_answer_for_every_layout(layouts, short_md, ensemble):
    members, path = layouts
    traj = short_md[2]
    models = [load_model(members, device="cpu"), load_model(path, device="cpu"),
              load_model(sorted(members.glob("*.onnx")), device="cpu")]
    assert [m.n_members for m in models] == [2, 2, 2]
    answers = [m.predict(traj.positions[:5], traj.velocities[:5], [1.0, 4.0, 10.0],
                         ensemble=ensemble) for m in models]
    for other in answers[1:]:
        np.testing.assert_array_equal(other.member, answers[0].member)
        np.testing.assert_allclose(other.positions, answers[0].positions, rtol=0,
                                   atol=POSITION_TOL_A)


def test_unrolling_is_the_same_for_every_layout(layouts, short_md):
    members, path = layouts
    traj = short_md[2]
    runs = [load_model(p, device="cpu").propagate(traj.positions[:3], traj.velocities[:3],
                                                  30.0, 0.5) for p in (members, path)]
    for a, b in zip(*runs, strict=True):
        assert a.info["segment_members"] == b.info["segment_members"]
        assert a.info["n_members"] == b.info["n_members"] == 2
        np.testing.assert_allclose(a.positions, b.positions, rtol=0, atol=1e-5)


def test_time_head_ensemble_file_runs_the_members_side_by_side(short_md, tmp_path):
    cfg = dataclasses.replace(QUICK, model=dataclasses.replace(QUICK.model, head="time"))
    fit(short_md, tmp_path / "run", cfg, n_members=2, device="cpu", progress=False)
    (path, desc), = export_run(tmp_path / "run", tmp_path / "ensemble.onnx")
    assert desc.n_members == 2 and desc.head == "time"
    export_run(tmp_path / "run", tmp_path / "members", layout="members")
    feed = _feed(short_md[1], [0, 300, 900], [0.0, 2.5, 10.0])
    stacked = ort.InferenceSession(str(path), providers=CPU).run(None, feed)
    per_member = [ort.InferenceSession(str(tmp_path / "members" / f"member_{k}.onnx"),
                                       providers=CPU).run(None, feed) for k in range(2)]
    _assert_close(stacked, per_member)

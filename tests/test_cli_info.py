"""`gicnet info`: element symbols, a short provenance by default, everything with --verbose."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli
from gicnet_runtime.cli.info import ELEMENT_SYMBOLS, summary_lines, symbols
from tests.onnx_fixtures import write_model

SHIPPED = Path(__file__).resolve().parents[1] / "exported" / "ethanol" / "ensemble.onnx"
PROVENANCE = {
    "data": {"engine": "gfn2", "engine_version": "GFN2-xTB", "molecule": "CH3CH2OH",
             "duration_fs": 10000.0, "dt_fs": 0.5, "temperature_K": 300.0, "seed": 1000},
    "sources": ["/data/train/a.h5", "/data/train/b.h5"], "n_train_trajectories": 36,
    "n_val_trajectories": 4, "train_config": {"model": {"hidden": [512, 256, 128]}},
    "exported_utc": "2026-12-02T02:35:25+00:00", "gicnet_version": "0.1.0",
    "torch_version": "2.13.0+cpu",
}


def _run(*args):
    return CliRunner().invoke(cli.main, ["info", *map(str, args)])


def test_symbols_match_ase():
    from ase.data import chemical_symbols

    assert list(ELEMENT_SYMBOLS[1:]) == chemical_symbols[1:len(ELEMENT_SYMBOLS)]
    assert len(ELEMENT_SYMBOLS) == 119
    assert symbols([6, 8, 1, 200]) == ["C", "O", "H", "Z=200"]


def test_summary_of_a_trained_model():
    validations = [{"bond_rmse": 0.001, "angle_rmse": 0.002, "cartesian_rmsd_at_tc_A": 0.008},
                   {"bond_rmse": 0.003, "angle_rmse": 0.004, "cartesian_rmsd_at_tc_A": 0.010}]
    assert summary_lines("basis", 16, PROVENANCE, validations) == [
        "network: basis head, K = 16 basis functions, hidden layers 512-256-128",
        "trained on: 36 GFN2-xTB trajectories of CH3CH2OH (+4 for validation), 10000 fs each "
        "at 0.5 fs, 300 K",
        "exported: 2026-12-02T02:35:25+00:00, gicnet 0.1.0, torch 2.13.0+cpu",
        "validation RMSE (mean of 2 members): bond 0.0020 A, angle 0.172 deg, "
        "RMSD at tc 0.0090 A",
    ]


def test_summary_of_sparse_provenance():
    assert summary_lines("time", None, {"fixture": "analytic"}, [{}]) == [
        "network: time head", "provenance: fixture"]
    assert summary_lines("time", None, {"data": "odd", "train_config": [1]}, []) == [
        "network: time head", "provenance: data, train_config"]


def test_info_is_short_by_default(tmp_path):
    result = _run("--model", write_model(tmp_path / "m.onnx"))
    assert result.exit_code == 0, result.output
    assert "atoms (9): C C O H H H H H H\n" in result.output
    assert "network: time head\nprovenance: fixture\n" in result.output
    assert "analytic" not in result.output and "ic_rows" not in result.output
    assert result.output.endswith("(gicnet info --verbose prints the whole description)\n")


def test_verbose_prints_the_whole_description(tmp_path):
    result = _run("--model", write_model(tmp_path / "m.onnx"), "--verbose")
    assert result.exit_code == 0, result.output
    start = result.output.index("m.onnx: {")
    whole = json.loads(result.output[start + len("m.onnx: "):])
    assert whole["provenance"] == {"fixture": "analytic"}
    assert whole["atomic_numbers"] == [6, 6, 8, 1, 1, 1, 1, 1, 1] and whole["tc_fs"] == 10.0


@pytest.mark.skipif(not SHIPPED.is_file(), reason="the shipped model is not in this tree")
def test_info_of_the_shipped_model():
    result = _run()
    assert result.exit_code == 0, result.output
    assert "trained on: " in result.output and " trajectories of CH3CH2OH" in result.output
    assert "validation RMSE (mean of 2 members): bond " in result.output
    assert "sources" not in result.output
    assert "/data/" not in result.output and ".h5" not in result.output
    assert "sources" in _run("--verbose").output

"""ONNX export: one self-contained graph per trained model, described by its metadata.

The graph holds everything between lab-frame inputs and lab-frame outputs: centre of
mass, the initial body frame, Cartesian -> internal coordinates, the network, its
hand-written time tangent, the gate, internal -> Cartesian and the energy model.
Inputs ``positions`` (B, N, 3) Å, ``velocities`` (B, N, 3) Å/fs, ``times`` (B, K) fs;
outputs ``positions_t``, ``velocities_t`` (B, K, N, 3) and ``energy_t`` (B, K) eV.
"""

from __future__ import annotations

import datetime
import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from gicnet_runtime import timegrid
from gicnet_runtime.description import ModelDescription
from gicnet_runtime.errors import InputError
from gicnet_runtime.icdef import DUMMY_POINTS_A
from gicnet_train import checkpoint as ckpt
from gicnet_train.energy import EnergyModel
from gicnet_train.fit import load_member
from gicnet_train.model import GICnet
from gicnet_train.verdict import has_finite_validation, validation_errors

INPUTS = ("positions", "velocities", "times")
OUTPUTS = ("positions_t", "velocities_t", "energy_t")
OPSET = 17
#: Validation numbers copied into the metadata (the per-time lists stay in final.json).
VALIDATION_KEYS = ("bond_rmse", "angle_rmse", "dihedral_rmse", "bond_rate_rmse",
                   "angle_rate_rmse", "dihedral_rate_rmse", "cartesian_rmsd_at_tc_A")


class ExportGraph(nn.Module):
    """GICnet plus its energy model: lab frame in, lab frame and energies out."""

    def __init__(self, model: GICnet, energy: EnergyModel) -> None:
        super().__init__()
        self.model, self.energy = model, energy

    def forward(self, positions: torch.Tensor, velocities: torch.Tensor, times: torch.Tensor):
        pos_t, vel_t = self.model(positions, velocities, times)
        return pos_t, vel_t, self.energy(pos_t)


def describe(model: GICnet, run: dict, final: dict, member: int,
             unroll_segment_fs: float | None = None) -> ModelDescription:
    """The ModelDescription of member ``member`` of a run (run.json and final.json), with
    the default unrolling segment length ``unroll_segment_fs`` (None: tc)."""
    import gicnet_train

    validation = {k: final["validation"][k] for k in VALIDATION_KEYS
                  if k in final.get("validation", {})}
    provenance = {
        "data": run.get("provenance", {}), "sources": run.get("sources", []),
        "n_train_trajectories": len(run["train_trajectories"]),
        "n_val_trajectories": len(run["val_trajectories"]),
        "member": member, "seed": final.get("seed"), "train_config": run["config"],
        "gicnet_version": getattr(gicnet_train, "__version__", "0.1.0"),
        "torch_version": torch.__version__,
        "exported_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    return ModelDescription(
        atomic_numbers=tuple(run["atomic_numbers"]), masses_amu=tuple(run["masses_amu"]),
        ic_rows=model.icdef.rows, dummy_points_A=DUMMY_POINTS_A, tc_fs=model.config.tc_fs,
        gate_width_fs=model.config.gate_width_fs, has_energy=True, head=model.config.head,
        n_basis=model.config.n_basis if model.config.head == "basis" else None,
        unroll_segment_fs=unroll_segment_fs, provenance=provenance,
        validation=validation)


def export_member(run_dir: str | Path, out_path: str | Path, member: int = 0,
                  unroll_segment_fs: float | None = None) -> ModelDescription:
    """Export member ``member`` of the training run in ``run_dir`` to ``out_path`` (atomic);
    ``unroll_segment_fs``: the default unrolling segment length written to the metadata."""
    import onnx

    run_dir, out_path = Path(run_dir), Path(out_path)
    if not (run_dir / f"member_{member}" / "best.pt").exists():
        raise InputError(f"{run_dir} has no trained member {member} (member_{member}/best.pt)")
    final = _finite_final(run_dir, member)
    model, energy, run = load_member(run_dir, member)
    if unroll_segment_fs is not None:
        unroll_segment_fs = timegrid.unroll_segment_fs(model.config.tc_fs, unroll_segment_fs)
    desc = describe(model, run, final, member, unroll_segment_fs)
    graph = ExportGraph(model.float(), energy.float()).eval()
    example = _example_inputs(run)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(graph, example, tmp, input_names=list(INPUTS),
                              output_names=list(OUTPUTS), opset_version=OPSET, dynamo=False,
                              dynamic_axes=_dynamic_axes())
        proto = onnx.load(tmp)
        onnx.helper.set_model_props(proto, desc.to_metadata())
        proto.producer_name, proto.doc_string = "gicnet", __doc__.strip().splitlines()[0]
        onnx.checker.check_model(proto, full_check=True)
        onnx.save(proto, tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a shipped model is an ordinary file
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return desc


def _finite_final(run_dir: Path, member: int) -> dict:
    """Member ``member``'s final.json; InputError unless its validation errors are finite."""
    final_path = run_dir / f"member_{member}" / "final.json"
    if not final_path.exists():
        raise InputError(f"member {member} of {run_dir} has no validation result "
                         "(member_K/final.json): its training did not finish; resume it")
    final = ckpt.read_json(final_path)
    if not has_finite_validation(final):
        raise InputError(f"member {member} of {run_dir} has no finite validation result "
                         f"(bond/angle/dihedral RMSE {validation_errors(final)}): not exported")
    return final


def _example_inputs(run: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    n = len(run["atomic_numbers"])
    gen = torch.Generator().manual_seed(0)
    positions = torch.randn(2, n, 3, generator=gen)
    return positions, 0.01 * torch.randn(2, n, 3, generator=gen), torch.rand(2, 3, generator=gen)


def _dynamic_axes() -> dict[str, dict[int, str]]:
    axes = {"positions": {0: "B"}, "velocities": {0: "B"}, "times": {0: "B", 1: "K"}}
    axes.update({name: {0: "B", 1: "K"} for name in OUTPUTS})
    return axes


def export_run(run_dir: str | Path, out: Path, member: int | None = None,
               unroll_segment_fs: float | None = None) -> list[tuple[Path, ModelDescription]]:
    """Export member ``member`` to the file ``out`` (.onnx), or every trained member to
    ``out/member_K.onnx`` (see :func:`export_member`), removing member files of an earlier
    export that this run does not have (the folder is loaded as one ensemble); returns
    (path, description) pairs."""
    run_dir, out = Path(run_dir), Path(out)
    if out.suffix == ".onnx":
        if member is None:
            members = trained_members(run_dir)
            if len(members) != 1:
                raise InputError(f"{run_dir} holds {len(members)} members: give --member, or "
                                 "a folder as --out for the whole ensemble")
            member = members[0]
        return [(out, export_member(run_dir, out, member, unroll_segment_fs))]
    members = [member] if member is not None else trained_members(run_dir)
    if not members:
        raise InputError(f"{run_dir} holds no trained member (member_K/best.pt)")
    written = [(out / f"member_{k}.onnx",
                export_member(run_dir, out / f"member_{k}.onnx", k, unroll_segment_fs))
               for k in members]
    if member is None:  # the folder is the ensemble: members of an earlier export go
        keep = {path.name for path, _ in written}
        for stale in out.glob("member_*.onnx"):
            if stale.name not in keep:
                stale.unlink()
    return written


def trained_members(run_dir: Path) -> list[int]:
    """Indices K of the members of a training run that have member_K/best.pt, sorted."""
    found = [int(p.parent.name.split("_")[1]) for p in run_dir.glob("member_*/best.pt")]
    return sorted(found)

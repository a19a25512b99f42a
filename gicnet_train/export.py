"""ONNX export: one self-contained graph per trained model, described by its metadata.

The graph holds everything between lab-frame inputs and lab-frame outputs: centre of
mass, the initial body frame, Cartesian -> internal coordinates, the network, its
hand-written time tangent, the gate, internal -> Cartesian and the energy model; its
constants are folded at export (:func:`fold_constants`).
Inputs ``positions`` (B, N, 3) Å, ``velocities`` (B, N, 3) Å/fs, ``times`` (B, K) fs;
outputs ``positions_t``, ``velocities_t`` (B, K, N, 3) and ``energy_t`` (B, K) eV.
"""

from __future__ import annotations

import datetime
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import onnx
import torch
from torch import nn

from gicnet_runtime.atomic import atomic_target
from gicnet_runtime.core import timegrid
from gicnet_runtime.core.contract import ALL_OUTPUT_NAMES, INPUT_NAMES
from gicnet_runtime.core.description import ModelDescription
from gicnet_runtime.core.icdef import DUMMY_POINTS_A
from gicnet_runtime.errors import InputError
from gicnet_train import checkpoint as ckpt
from gicnet_train.energy import EnergyModel
from gicnet_train.fit import load_member
from gicnet_train.model import GICnet, lab_frame_outputs
from gicnet_train.verdict import has_finite_validation, validation_errors

INPUTS = INPUT_NAMES
OUTPUTS = ALL_OUTPUT_NAMES
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
        q, q_dot, frame = self.model.internal_from_lab(positions, velocities, times)
        return lab_frame_outputs(q, q_dot, self.model.icdef, frame, times, self.energy)


def describe(model: GICnet, run: dict, final: dict, member: int,
             unroll_segment_fs: float | None = None, *, restore_fraction: float | None = None,
             restore_deficit: str | None = None,
             reversal_share: float | None = None) -> ModelDescription:
    """The ModelDescription of member ``member`` of a run (run.json and final.json), with
    the default unrolling segment length ``unroll_segment_fs`` (None: tc), energy
    restoration's ``restore_fraction`` and ``restore_deficit`` (None: all of the deficit at
    the end; ModelDescription's unroll_restore_*) and the time-reversal correction's
    ``reversal_share`` (None: none; ModelDescription's unroll_reversal_share)."""
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
        unroll_segment_fs=unroll_segment_fs, unroll_restore_fraction=restore_fraction,
        unroll_restore_deficit=restore_deficit, unroll_reversal_share=reversal_share,
        provenance=provenance,
        validation=validation)._normalised()


def export_member(run_dir: str | Path, out_path: str | Path, member: int = 0,
                  unroll_segment_fs: float | None = None, **restore) -> ModelDescription:
    """Export member ``member`` of the training run in ``run_dir`` to ``out_path`` (atomic);
    ``unroll_segment_fs``: the default unrolling segment length written to the metadata;
    ``restore``: :func:`describe`'s restore_fraction, restore_deficit and reversal_share."""
    model, energy, run, desc = _member(Path(run_dir), member, unroll_segment_fs, **restore)
    graph = ExportGraph(model.float(), energy.float()).eval()
    write_graph(graph, _example_inputs(run), desc, Path(out_path), _dynamic_axes())
    return desc


def export_ensemble(run_dir: str | Path, out_path: str | Path, members: list[int],
                    unroll_segment_fs: float | None = None, **restore) -> ModelDescription:
    """Export the members ``members`` of a run as one ensemble file (format version 2,
    outputs with a leading member axis) at ``out_path`` (atomic): basis heads as one
    stacked graph, other heads as their graphs side by side
    (:mod:`gicnet_train.ensemble_graph`)."""
    from gicnet_train import ensemble_graph as eg

    run_dir, out_path = Path(run_dir), Path(out_path)
    loaded = [_member(run_dir, k, unroll_segment_fs, **restore) for k in members]
    desc = eg.describe_ensemble([d for *_, d in loaded])
    models = [m.float() for m, *_ in loaded]
    if models[0].config.head == "basis":
        graph = eg.StackedEnsemble(models, loaded[0][1].float()).eval()
        write_graph(graph, _example_inputs(loaded[0][2]), desc, out_path,
                    _dynamic_axes(member_axis=True))
        return desc
    with tempfile.TemporaryDirectory(dir=out_path.parent) as tmp:
        paths = [Path(tmp) / f"member_{k}.onnx" for k in members]
        for k, path in zip(members, paths, strict=True):
            export_member(run_dir, path, k, unroll_segment_fs, **restore)
        _save_atomic(eg.merge_member_files(paths, desc), out_path)
    return desc


def _member(run_dir: Path, member: int, unroll_segment_fs: float | None, **restore):
    """(model, energy model, run.json, description) of a trained, validated member."""
    if not (run_dir / f"member_{member}" / "best.pt").exists():
        raise InputError(f"{run_dir} has no trained member {member} (member_{member}/best.pt)")
    final = _finite_final(run_dir, member)
    model, energy, run = load_member(run_dir, member)
    if unroll_segment_fs is not None:
        unroll_segment_fs = timegrid.unroll_segment_fs(model.config.tc_fs, unroll_segment_fs)
    return model, energy, run, describe(model, run, final, member, unroll_segment_fs, **restore)


def write_graph(graph: nn.Module, example: tuple, desc: ModelDescription, out_path: Path,
                dynamic_axes: dict) -> None:
    """torch.onnx.export ``graph`` on ``example``, fold its constants, attach ``desc`` as
    metadata, check the file fully and move it to ``out_path`` (atomic)."""
    with tempfile.TemporaryDirectory() as tmp:
        exported = Path(tmp) / "graph.onnx"
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(graph, example, str(exported), input_names=list(INPUTS),
                              output_names=list(OUTPUTS), opset_version=OPSET, dynamo=False,
                              dynamic_axes=dynamic_axes)
        proto = fold_constants(exported)
    onnx.helper.set_model_props(proto, desc.to_metadata())
    proto.producer_name, proto.doc_string = "gicnet", __doc__.strip().splitlines()[0]
    _save_atomic(proto, out_path)


def fold_constants(path: Path):
    """The ONNX graph in ``path`` with its constant subgraphs folded and redundant nodes
    removed: onnxruntime's basic (provider-independent, ONNX-standard) graph optimisation,
    done once at export instead of at every session start, so the file holds the graph a
    session runs.  Only the opsets the nodes use are kept."""
    import onnxruntime as ort

    folded_path = path.with_name(path.stem + ".folded.onnx")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(folded_path)
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    folded = onnx.load(str(folded_path))
    used = {node.domain for node in folded.graph.node} | {""}
    kept = [opset for opset in folded.opset_import if opset.domain in used]
    del folded.opset_import[:]
    folded.opset_import.extend(kept)
    return folded


def _save_atomic(proto, out_path: Path) -> None:
    """Check ``proto`` fully and write it to ``out_path`` atomically (the project's
    :func:`gicnet_runtime.io.formats.atomic_target`: a uniquely named temporary beside it)."""
    onnx.checker.check_model(proto, full_check=True)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(out_path) as tmp:
        onnx.save(proto, str(tmp))


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


def _dynamic_axes(member_axis: bool = False) -> dict[str, dict[int, str]]:
    """B and K dynamic; outputs of an ensemble file have the (static) member axis first."""
    axes = {"positions": {0: "B"}, "velocities": {0: "B"}, "times": {0: "B", 1: "K"}}
    first = 1 if member_axis else 0
    axes.update({name: {first: "B", first + 1: "K"} for name in OUTPUTS})
    return axes


#: How a folder holds an exported ensemble: one ensemble file, or one file per member.
LAYOUTS = ("ensemble", "members")
ENSEMBLE_FILE = "ensemble.onnx"


def export_run(run_dir: str | Path, out: Path, member: int | None = None,
               unroll_segment_fs: float | None = None, layout: str = "ensemble",
               stage: Callable[[Path], Path] | None = None, **restore
               ) -> list[tuple[Path, ModelDescription]]:
    """Export a run; returns (path, description) pairs of the files written.

    ``out`` a file (.onnx): member ``member``, the run's only member, or the whole
    ensemble as one ensemble file.  ``out`` a folder: member ``member`` as
    ``member_K.onnx``, or the whole ensemble as ``ensemble.onnx`` (``layout``
    "ensemble", one member: ``member_K.onnx``) or as ``member_K.onnx`` per member
    ("members").  The folder is loaded as one ensemble, so model files of an earlier
    export there (``member_*.onnx``, ``ensemble.onnx``) that were not written go
    (:func:`remove_stale_models`; with ``stage``, the caller removes them once it has
    moved the staged files, named ``stage(path)``, into place).  ``restore``:
    :func:`describe`'s restore_fraction, restore_deficit and reversal_share.
    """
    files = export_targets(run_dir, out, member, layout)
    written = [(path, export_member(run_dir, stage(path) if stage else path, ks[0],
                                    unroll_segment_fs, **restore) if len(ks) == 1
                else export_ensemble(run_dir, stage(path) if stage else path, ks,
                                     unroll_segment_fs, **restore))
               for path, ks in files.items()]
    if stage is None:
        remove_stale_models(out, member, [path for path, _ in written])
    return written


def export_targets(run_dir: str | Path, out: Path, member: int | None = None,
                   layout: str = "ensemble") -> dict[Path, list[int]]:
    """The files :func:`export_run` writes: path -> the members it holds."""
    if layout not in LAYOUTS:
        raise InputError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    run_dir, out = Path(run_dir), Path(out)
    members = [member] if member is not None else trained_members(run_dir)
    if not members:
        raise InputError(f"{run_dir} holds no trained member (member_K/best.pt)")
    if out.suffix == ".onnx":
        return {out: members}
    if len(members) > 1 and layout == "ensemble":
        return {out / ENSEMBLE_FILE: members}
    return {out / f"member_{k}.onnx": [k] for k in members}


def remove_stale_models(out: Path, member: int | None, written: list[Path]) -> None:
    """Delete model files of an earlier export in folder ``out`` that were not written
    now (a whole-ensemble export into a folder only)."""
    out = Path(out)
    if member is not None or out.suffix == ".onnx":
        return
    keep = {path.name for path in written}
    for stale in [*out.glob("member_*.onnx"), out / ENSEMBLE_FILE]:
        if stale.exists() and stale.name not in keep:
            stale.unlink()


def trained_members(run_dir: Path) -> list[int]:
    """Indices K of the members of a training run that have member_K/best.pt, sorted."""
    found = [int(p.parent.name.split("_")[1]) for p in run_dir.glob("member_*/best.pt")]
    return sorted(found)

"""Hardware efficiency: FLOPs of the exported graph, its throughput, the machine's matmul peak.

FLOPs count the MatMul/Gemm/Einsum nodes only, two per multiply-add; element-wise nodes
(GELU, the Chebyshev basis, the gate, the geometry) are not counted: they are the work
that keeps the graph below the matmul peak.

A call on B starts and K times per start costs

    F(B, K) = per_call + per_start * B + per_time * K + per_frame * B * K

FLOPs: with the basis head the network runs once per start (per_start) and only the basis
contraction, the internal -> Cartesian conversion and the energy model run per predicted
frame (per_frame); per_call and per_time are 0 for gicnet graphs.  The four terms are
counted from the ONNX graph (shape inference at four (B, K) points, checked at a fifth)
and analytically from the layer widths (:func:`analytic_terms`), and the two are compared.
An ensemble file (format version 2, ``gicnet.n_members`` M, outputs (M, B, K, N, 3))
is counted the same way; its members' MatMuls may be batched over the member axis with
3-D weights, and the two counts are compared against both ways of building it (members
side by side: M x one member; stacked: the inputs' body-frame rotation shared).

The peak is measured in the same process with the same thread count: float32 MatMuls
(1024 rows, weights as an initializer, like the graph's) of the machine-peak shape
1024 -> 512 and of the graph's own largest layers, run by onnxruntime on the same
provider, and numpy's matmul on the CPU.  On CUDA, inputs and outputs stay on the GPU
(I/O binding) so that only the kernel is timed.

:class:`NetworkCounter` counts, while it is active, the starts and frames of every
onnxruntime call in the process (so the FLOPs a ``Model.propagate`` spent), without
reaching into the runtime's objects.
"""

from __future__ import annotations

import itertools
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

#: Layer widths when a file's metadata does not record them (the shipped model's:
#: gicnet_train.model.DEFAULT_HIDDEN and the energy model's default).
DEFAULT_HIDDEN = (512, 256, 128)
DEFAULT_ENERGY_HIDDEN = (256, 128, 64)
#: Network inputs per atom: r, theta (scaled); sin, cos of phi; three rates (+ t: time head).
FEATURES_PER_ATOM = 7
#: The machine-peak probe shape (rows x inner -> cols), as in the earlier benchmarks.
PEAK_SHAPE = (1024, 1024, 512)
#: Rows of every peak-matmul probe: the CPU call size
#: (gicnet_runtime.core.session.CPU_CHUNK_FRAMES).
PEAK_ROWS = 1024
#: Frames (rows x times, members included) per call of the bare-graph sweep on the CPU.
CPU_CHUNK_FRAMES = 1024
#: Each timing repeats calls for at least this long, s.
MIN_TIMING_S = 1.0
#: (B, K) points of the graph count; the last one checks the fitted terms.
_FIT_POINTS = ((2, 2), (3, 2), (2, 5), (3, 5))
_CHECK_POINT = (4, 7)
_MATMUL_OPS = ("MatMul", "Gemm", "Einsum")


# --------------------------------------------------------------------------- metadata

def metadata(path: str | Path) -> dict:
    """The file's gicnet metadata, values parsed from JSON (keys without ``gicnet.``)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    out = {}
    for key, value in session.get_modelmeta().custom_metadata_map.items():
        if key.startswith("gicnet."):
            try:
                out[key[len("gicnet."):]] = json.loads(value)
            except json.JSONDecodeError:
                out[key[len("gicnet."):]] = value
    return out


def architecture(meta: dict) -> dict:
    """What the analytic count needs, from a file's metadata (widths: its recorded training
    configuration, else the defaults above)."""
    config = (meta.get("provenance") or {}).get("train_config") or {}
    hidden = (config.get("model") or {}).get("hidden")
    energy_hidden = (config.get("energy") or {}).get("hidden")
    return {"n_atoms": len(meta["atomic_numbers"]), "head": meta.get("head", "time"),
            "n_basis": meta.get("n_basis"), "n_members": int(meta.get("n_members") or 1),
            "ensemble_file": meta.get("n_members") is not None,
            "hidden": tuple(hidden or DEFAULT_HIDDEN),
            "energy_hidden": tuple(energy_hidden or DEFAULT_ENERGY_HIDDEN),
            "has_energy": bool(meta.get("has_energy", True)),
            "widths_from": "metadata" if hidden and energy_hidden else "defaults"}


# --------------------------------------------------------------------------- analytic count

def _layers(widths) -> int:
    """Multiply-adds of an MLP with these widths (input, hidden..., output) per row."""
    return sum(a * b for a, b in itertools.pairwise(widths))


def analytic_terms(arch: dict, shared_inputs: bool = False,
                   matmul_rotations_back: bool = True) -> dict:
    """FLOP terms (see the module docstring) of a file from its layer widths.

    One member, per start: the (N, 3) x (3, 3) body-frame rotations of positions and
    velocities, and for the basis head the whole MLP 7N - hidden - 3N*n_basis (for the
    time head only its first layer: t enters it linearly).  Per frame: for the basis head
    the two (K, n_basis) x (n_basis, 3N) contractions (value, time derivative), for the
    time head the remaining layers for the value and for its tangent; then the rotations
    back to the lab frame and the energy MLP on the N(N-1)/2 inverse distances.

    M members side by side cost M times this; ``shared_inputs``: the inputs' rotations
    run once for all members (gicnet_train.ensemble_graph.StackedEnsemble).
    ``matmul_rotations_back`` False: the rotations back are element-wise products (the
    frames-last export, gicnet_train.model.lab_frame_outputs_frames_last), not MatMul
    FLOPs, so the per-frame term leaves them out.
    """
    n, members = arch["n_atoms"], arch["n_members"]
    features = FEATURES_PER_ATOM * n
    rotations = 2 * 2 * n * 3 * 3
    pairs = n * (n - 1) // 2
    energy = 2 * _layers((pairs, *arch["energy_hidden"], 1)) if arch["has_energy"] else 0
    if arch["head"] == "basis":
        n_basis = int(arch["n_basis"])
        network_start = 2 * _layers((features, *arch["hidden"], 3 * n * n_basis))
        network_frame = 2 * 2 * n_basis * 3 * n
    elif arch["head"] == "time":
        network_start = 2 * features * arch["hidden"][0]
        network_frame = 2 * 2 * _layers((*arch["hidden"], 3 * n))
    else:
        raise ValueError(f"no analytic count for head {arch['head']!r}")
    per_start = members * (network_start + rotations)
    if shared_inputs:
        per_start -= (members - 1) * rotations
    per_frame = members * (network_frame + energy
                           + (rotations if matmul_rotations_back else 0))
    return {"per_call": 0, "per_start": per_start, "per_time": 0, "per_frame": per_frame,
            "per_member_frame": {"network": network_frame, "rotations": rotations,
                                 "energy": energy},
            "per_member_start": {"network": network_start, "rotations": rotations}}


def flops_of(terms: dict, n_batch: int, n_times: int) -> int:
    """F(B, K) from the terms."""
    return (terms["per_call"] + terms["per_start"] * n_batch + terms["per_time"] * n_times
            + terms["per_frame"] * n_batch * n_times)


def analytic_flops(arch: dict, n_batch: int, n_times: int, shared_inputs: bool = False) -> int:
    """MatMul FLOPs of one call on (B, N, 3) starts and (B, K) times, from the widths."""
    return flops_of(analytic_terms(arch, shared_inputs), n_batch, n_times)


# --------------------------------------------------------------------------- graph count

def _bind_dims(model, n_batch: int, n_times: int) -> None:
    """Give the inputs' symbolic dimensions concrete values: positions and velocities
    (B, N, 3), times (B, K), whatever the symbols are called."""
    axes = {"positions": {0: n_batch}, "velocities": {0: n_batch},
            "times": {0: n_batch, 1: n_times}}
    by_symbol = {"B": n_batch, "K": n_times}
    for value in model.graph.input:
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.dim_value:
                continue
            size = axes.get(value.name, {}).get(axis, by_symbol.get(dim.dim_param))
            if size is None:
                raise ValueError(f"input {value.name} axis {axis} ({dim.dim_param!r}) is "
                                 "neither B nor K")
            dim.Clear()
            dim.dim_value = size


def _node_flops(node, shapes: dict) -> int:
    """FLOPs of one MatMul, Gemm or Einsum node from its input and output shapes."""
    if node.op_type == "Einsum":
        equation = next(a.s.decode() for a in node.attribute if a.name == "equation")
        lhs = equation.replace(" ", "").split("->")[0].split(",")
        if len(lhs) != 2 or "..." in equation:
            raise ValueError(f"Einsum {equation!r}: only two operands without '...' counted")
        sizes = {}
        for letters, name in zip(lhs, node.input):
            sizes.update(zip(letters, shapes[name]))
        return 2 * int(np.prod([sizes[c] for c in sizes]))
    a, out = shapes[node.input[0]], shapes[node.output[0]]
    trans_a = any(x.name == "transA" and x.i for x in node.attribute)
    inner = a[0] if node.op_type == "Gemm" and trans_a else a[-1]
    return 2 * int(np.prod(out)) * int(inner)


def _static_shapes(model) -> dict:
    """Shapes onnx shape inference finds (dims 0 where it cannot)."""
    from onnx import shape_inference

    inferred = shape_inference.infer_shapes(model, data_prop=True)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*inferred.graph.value_info, *inferred.graph.input,
                        *inferred.graph.output]
              if v.type.tensor_type.HasField("shape")}
    shapes.update({t.name: list(t.dims) for t in model.graph.initializer})
    for node in model.graph.node:
        if node.op_type == "Constant":
            value = next((a for a in node.attribute if a.name == "value"), None)
            if value is not None:
                shapes[node.output[0]] = list(value.t.dims)
    return shapes


def _runtime_shapes(model, names: set[str], n_batch: int, n_times: int,
                    n_atoms: int) -> dict:
    """Shapes of ``names`` from one onnxruntime run of the graph with them as outputs
    (for what shape inference leaves open)."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto.FromString(model.SerializeToString())
    known = {o.name for o in probe.graph.output}
    for name in sorted(names - known):
        probe.graph.output.append(onnx.ValueInfoProto(name=name))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(probe.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {"positions": rng.normal(0, 1, (n_batch, n_atoms, 3)).astype(np.float32),
            "velocities": rng.normal(0, 0.01, (n_batch, n_atoms, 3)).astype(np.float32),
            "times": np.tile(np.linspace(0.5, 9.5, n_times, dtype=np.float32), (n_batch, 1))}
    wanted = sorted(names)
    with np.errstate(all="ignore"):
        values = session.run(wanted, feed)
    return {name: list(v.shape) for name, v in zip(wanted, values)}


def graph_flops(model_path: str | Path, n_batch: int, n_times: int, *,
                model=None, per_node: dict | None = None) -> int:
    """MatMul/Gemm/Einsum FLOPs of one call of the ONNX graph at B starts x K times.

    Shapes come from onnx shape inference with concrete B and K; shapes it leaves open
    are taken from one onnxruntime run.  ``per_node``: filled with each node's FLOPs."""
    import onnx

    if model is None:
        model = onnx.load(str(model_path))
    model = onnx.ModelProto.FromString(model.SerializeToString())
    _bind_dims(model, n_batch, n_times)
    shapes = _static_shapes(model)
    nodes = [n for n in model.graph.node if n.op_type in _MATMUL_OPS]
    needed = {x for n in nodes for x in (*n.input[:2], n.output[0])}
    missing = {x for x in needed if not shapes.get(x) or not all(shapes[x])}
    if missing:
        n_atoms = next(v.type.tensor_type.shape.dim[1].dim_value for v in model.graph.input
                       if v.name == "positions")
        shapes.update(_runtime_shapes(model, missing, n_batch, n_times, n_atoms))
    total = 0
    for node in nodes:
        flops = _node_flops(node, shapes)
        total += flops
        if per_node is not None:
            per_node[node.name or node.output[0]] = flops
    return total


def graph_terms(model_path: str | Path) -> dict:
    """The FLOP terms of a graph, fitted to exact counts at four (B, K) points and checked
    at a fifth (``check_ok``); per node: which nodes cost per start and per frame."""
    import onnx

    model = onnx.load(str(model_path))
    counts = {p: graph_flops(model_path, *p, model=model) for p in _FIT_POINTS}
    (b0, k0), (b1, _), (_, k1), _ = _FIT_POINTS
    f00, f10, f01, f11 = (counts[p] for p in _FIT_POINTS)
    per_frame, rest = divmod(f11 - f10 - f01 + f00, (b1 - b0) * (k1 - k0))
    per_start = (f10 - f00) // (b1 - b0) - per_frame * k0
    per_time = (f01 - f00) // (k1 - k0) - per_frame * b0
    per_call = f00 - per_start * b0 - per_time * k0 - per_frame * b0 * k0
    terms = {"per_call": int(per_call), "per_start": int(per_start),
             "per_time": int(per_time), "per_frame": int(per_frame)}
    check = graph_flops(model_path, *_CHECK_POINT, model=model)
    terms["check_point"] = list(_CHECK_POINT)
    terms["check_ok"] = bool(rest == 0 and check == flops_of(terms, *_CHECK_POINT))
    terms["matmul_nodes"] = sum(n.op_type in _MATMUL_OPS for n in model.graph.node)
    terms["nodes"] = len(model.graph.node)
    return terms


def largest_layers(model_path: str | Path) -> list[tuple[int, int]]:
    """(inner, cols) of the graph's largest weight matrices: 2-D (or the last two axes of
    3-D, member-stacked) MatMul/Gemm initializers, by size, at most two distinct."""
    try:
        import onnx
    except ImportError:
        return []
    model = onnx.load(str(model_path))
    inits = {t.name: list(t.dims) for t in model.graph.initializer}
    found = set()
    for node in model.graph.node:
        if node.op_type not in ("MatMul", "Gemm") or len(node.input) < 2:
            continue
        dims = inits.get(node.input[1])
        if not dims or len(dims) < 2:
            continue
        inner, cols = dims[-2:]
        if node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute):
            inner, cols = cols, inner
        found.add((int(inner), int(cols)))
    return sorted(found, key=lambda s: -s[0] * s[1])[:2]


def flops_report(model_path: str | Path, n_times: int) -> dict:
    """Both counts of one file and what they give at K times per start.

    Never raises for a disagreement (the one final run must not die of it): the result
    says ``graph_and_analytic_agree`` and holds both sets of terms."""
    arch = architecture(metadata(model_path))
    result = {"file": str(model_path), "architecture": {k: list(v) if isinstance(v, tuple)
                                                        else v for k, v in arch.items()},
              "n_times": n_times}
    try:
        analytic = {"side_by_side": analytic_terms(arch)}
        if arch["n_members"] > 1:
            analytic["stacked_shared_inputs"] = analytic_terms(arch, shared_inputs=True)
        for name in list(analytic):
            analytic[f"{name}, frames last"] = analytic_terms(
                arch, shared_inputs=name == "stacked_shared_inputs",
                matmul_rotations_back=False)
        result["analytic_terms"] = analytic
    except ValueError as err:
        analytic = None
        result["analytic_terms"] = f"unavailable: {err}"
    try:
        graph = graph_terms(model_path)
    except ImportError:
        graph = None
        result["graph_terms"] = "skipped: the onnx package is not installed"
    except Exception as err:  # noqa: BLE001 (report, do not abort the run)
        graph = None
        result["graph_terms"] = f"failed: {type(err).__name__}: {err}"
    else:
        result["graph_terms"] = graph
    if graph is not None and analytic is not None:
        match = [name for name, t in analytic.items()
                 if all(t[k] == graph[k] for k in ("per_call", "per_start", "per_time",
                                                   "per_frame"))]
        result["graph_and_analytic_agree"] = bool(match)
        result["analytic_variant_matching_graph"] = match[0] if match else None
    terms = graph if graph is not None and graph.get("check_ok") else (
        None if analytic is None else analytic["side_by_side"])
    if terms is None:
        raise RuntimeError(f"{model_path}: neither FLOP count worked: {result}")
    result["terms_used"] = "graph" if terms is graph else "analytic"
    result["terms"] = {k: terms[k] for k in ("per_call", "per_start", "per_time", "per_frame")}
    members = arch["n_members"]
    per_call = flops_of(terms, 1, n_times)
    result["flops_per_start_call"] = per_call  # one start, K times, every member
    result["flops_per_frame"] = per_call / n_times  # per predicted (ensemble) frame at K
    result["flops_per_member_frame"] = per_call / n_times / members
    return result


def check_flops(report: dict) -> str:
    """One line saying whether the two counts agree (for the printed summary)."""
    if "graph_and_analytic_agree" not in report:
        return f"graph count: {report.get('graph_terms')}; analytic: {report.get('analytic_terms')}"
    if report["graph_and_analytic_agree"]:
        return f"graph = analytic ({report['analytic_variant_matching_graph']})"
    g, a = report["graph_terms"], report["analytic_terms"]["side_by_side"]
    return (f"graph and analytic DISAGREE: graph per start {g['per_start']}, per frame "
            f"{g['per_frame']}; analytic {a['per_start']}, {a['per_frame']}")


# --------------------------------------------------------------------------- segments

def segment_times(segment_fs: float, dt_fs: float, duration_fs: float,
                  checks: int = 10, rtol: float = 1e-9) -> dict:
    """Times per start of each segment call of ``propagate`` (docs/onnx-contract.md,
    gicnet_runtime/propagate.py ``_segment_times``): the output frames in the segment plus
    the ``checks`` check times L j / checks that are not frames, each distinct time once.

    Returns the mean and largest K over the segments of ``duration_fs`` and their count."""
    count = int(np.floor(duration_fs / dt_fs * (1 + 1e-9))) + 1
    frames = np.arange(count) * dt_fs
    segment = np.ceil(frames[1:] / segment_fs * (1 - 1e-9) - 1e-9).astype(int) - 1
    checks_fs = segment_fs * np.arange(1, checks + 1) / checks
    widths = []
    for s in range(int(segment[-1]) + 1):
        local = np.clip(frames[1:][segment == s] - s * segment_fs, 0.0, segment_fs)
        match = np.abs(checks_fs[:, None] - local[None, :]) <= rtol * segment_fs
        widths.append(local.size + int((~match.any(axis=1)).sum()))
    return {"segments": len(widths), "mean_times_per_segment": float(np.mean(widths)),
            "max_times_per_segment": int(max(widths))}


def flops_per_simulated_fs(terms: dict, times_per_segment: float, segment_fs: float) -> float:
    """FLOPs of one trajectory's segment call (one start, K times, every member of the
    file) over the segment length L, FLOP per fs (backtracking not included)."""
    return (terms["per_start"] + terms["per_frame"] * times_per_segment) / segment_fs


# --------------------------------------------------------------------------- counting calls

class NetworkCounter:
    """Counts the starts, frames and FLOPs of onnxruntime calls while active.

    Patches ``onnxruntime.InferenceSession.run`` for the whole process (so it sees every
    session, however the runtime holds them) and restores it on exit.  A call's starts and
    times are the ``times`` input's (B, K); its members are M when ``positions_t`` comes
    back (M, B, K, N, 3), else 1.  ``terms_for(M)`` gives the FLOP terms of a call."""

    def __init__(self, terms_for: Callable[[int], dict | None]) -> None:
        self.terms_for = terms_for
        self.reset()

    def reset(self) -> None:
        self.calls = self.starts = self.frames = self.member_frames = 0
        self.flops = 0
        self.uncounted_calls = 0

    def __enter__(self) -> NetworkCounter:
        import onnxruntime as ort

        self._class = ort.InferenceSession
        self._original = self._class.run
        counter, original = self, self._original

        def run(session, output_names, input_feed, run_options=None):
            values = original(session, output_names, input_feed, run_options)
            counter._count(session, output_names, input_feed, values)
            return values

        self._class.run = run
        return self

    def __exit__(self, *exc) -> None:
        self._class.run = self._original

    def _count(self, session, output_names, feed, values) -> None:
        times = feed.get("times") if isinstance(feed, dict) else None
        if times is None or np.ndim(times) != 2:
            self.uncounted_calls += 1
            return
        names = list(output_names) if output_names else [o.name for o in session.get_outputs()]
        members = 1
        if "positions_t" in names:
            shape = np.shape(values[names.index("positions_t")])
            members = shape[0] if len(shape) == 5 else 1
        n_batch, n_times = np.shape(times)
        terms = self.terms_for(members)
        self.calls += 1
        self.starts += n_batch
        self.frames += n_batch * n_times
        self.member_frames += members * n_batch * n_times
        if terms is None:
            self.uncounted_calls += 1
        else:
            self.flops += flops_of(terms, n_batch, n_times)


# --------------------------------------------------------------------------- timing

def best_seconds_per_call(call: Callable[[], object], rounds: int = 3) -> float:
    """Best (over ``rounds``) mean wall time of ``call``, each round >= MIN_TIMING_S / rounds."""
    call()
    best = np.inf
    for _ in range(rounds):
        count, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < MIN_TIMING_S / rounds or count == 0:
            call()
            count += 1
        best = min(best, elapsed / count)
    return best


def open_session(path: str | Path, providers: list[str], threads: int):
    """A plain onnxruntime session (intra-op ``threads``, inter-op 1)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    return ort.InferenceSession(str(path), options, providers=providers)


def graph_throughput(session, initial, n_batch_list: list[int], n_times: int, terms: dict,
                     members: int = 1, chunk_frames: int | None = CPU_CHUNK_FRAMES) -> list[dict]:
    """Frames/s and FLOP/s of the bare graph (no unrolling) for several batch sizes.

    session: an onnxruntime session of one file; initial: (pos, vel) (B0, N, 3); each
    batch is run in calls of at most ``chunk_frames`` member frames (M x rows x K; None:
    one call), rows shared out evenly between the calls, as the runtime chunks on the CPU.
    """
    rows = []
    for n_batch in n_batch_list:
        pos, vel = (np.resize(x, (n_batch, *x.shape[1:])).astype(np.float32) for x in initial)
        times = np.tile(np.linspace(0.5, 10.0, n_times, dtype=np.float32), (n_batch, 1))
        step = n_batch if chunk_frames is None else max(1, chunk_frames // (members * n_times))
        n_chunks = -(-n_batch // step)  # rows shared out evenly, as the runtime does
        bounds = [k * n_batch // n_chunks for k in range(n_chunks + 1)]
        feeds = [{"positions": pos[a:b], "velocities": vel[a:b], "times": times[a:b]}
                 for a, b in itertools.pairwise(bounds)]

        def call(feeds=feeds):
            for feed in feeds:
                session.run(None, feed)

        seconds = best_seconds_per_call(call)
        flops = flops_of(terms, n_batch, n_times)
        rows.append({"batch": n_batch, "n_times": n_times, "members": members,
                     "calls_per_batch": n_chunks, "seconds_per_batch": seconds,
                     "frames_per_s": n_batch * n_times / seconds,
                     "member_frames_per_s": members * n_batch * n_times / seconds,
                     "flop_per_s": flops / seconds})
    return rows


def profiled_kernels(path: str | Path, providers: list[str], threads: int,
                     drive: Callable[[object], None], optimised: bool = False
                     ) -> tuple[dict[str, float], dict[str, str], object]:
    """onnxruntime's profiler on a session of ``path``: ``drive(session)`` makes the calls.
    Returns each node's summed kernel time, µs, and its operator type, by node name, and
    (with ``optimised``) the graph the session runs after its optimisations (an ONNX
    GraphProto; else None).  Trace and graph go to a temporary folder, removed afterwards."""
    import collections
    import shutil
    import tempfile

    import onnxruntime as ort

    folder = Path(tempfile.mkdtemp(prefix="gicnet_ort_profile_"))
    try:
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.enable_profiling = True
        options.profile_file_prefix = str(folder / "ort")
        if optimised:
            options.optimized_model_filepath = str(folder / "optimised.onnx")
        session = ort.InferenceSession(str(path), options, providers=providers)
        graph = None
        if optimised:
            import onnx

            graph = onnx.load(options.optimized_model_filepath).graph
        drive(session)
        trace = json.loads(Path(session.end_profiling()).read_text())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    kernel_us, op_types = collections.Counter(), {}
    suffix = "_kernel_time"
    for event in trace:
        if event.get("cat") == "Node" and event.get("name", "").endswith(suffix):
            name = event["name"][:-len(suffix)]
            kernel_us[name] += event.get("dur", 0)
            op_types[name] = event.get("args", {}).get("op_name", "?")
    return dict(kernel_us), op_types, graph


def operator_split(path: str | Path, providers: list[str], threads: int, initial,
                   n_batch: int, n_times: int, members: int = 1,
                   chunk_frames: int | None = CPU_CHUNK_FRAMES, calls: int = 20) -> dict:
    """onnxruntime's profiler on the bare graph: kernel time per operator type (fractions
    of the summed node time) for ``calls`` batches of B starts x K times, chunked as in
    :func:`graph_throughput`."""
    import collections

    pos, vel = (np.resize(x, (n_batch, *x.shape[1:])).astype(np.float32) for x in initial)
    times = np.tile(np.linspace(0.5, 10.0, n_times, dtype=np.float32), (n_batch, 1))
    step = n_batch if chunk_frames is None else max(1, chunk_frames // (members * n_times))

    def drive(session) -> None:
        for _ in range(calls):
            for a in range(0, n_batch, step):
                session.run(None, {"positions": pos[a:a + step], "velocities": vel[a:a + step],
                                   "times": times[a:a + step]})

    kernel_us, op_types, _ = profiled_kernels(path, providers, threads, drive)
    by_op = collections.Counter()
    for name, us in kernel_us.items():
        by_op[op_types[name]] += us
    total = sum(by_op.values()) or 1
    return {"file": str(path), "batch": n_batch, "n_times": n_times, "calls": calls,
            "nodes_after_optimisation": len(kernel_us), "kernel_time_us": total,
            "fractions": {op: t / total for op, t in by_op.most_common()},
            "matmul_fraction": sum(t for op, t in by_op.items()
                                   if op in ("MatMul", "Gemm", "FusedMatMul", "FusedGemm",
                                             "Einsum")) / total}


def _matmul_model(rows: int, inner: int, cols: int) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = np.random.default_rng(0).standard_normal((inner, cols)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "w"], ["c"])], "matmul",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [rows, inner])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [rows, cols])],
        [numpy_helper.from_array(weight, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 9)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def onnxruntime_matmul_peak(providers: list[str], threads: int, rows: int = PEAK_SHAPE[0],
                            inner: int = PEAK_SHAPE[1], cols: int = PEAK_SHAPE[2]) -> dict:
    """FLOP/s of one float32 MatMul (rows x inner) @ (inner x cols) on onnxruntime."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(_matmul_model(rows, inner, cols), options, providers=providers)
    a = np.random.default_rng(1).standard_normal((rows, inner)).astype(np.float32)
    device = "cuda" if providers[0].startswith("CUDA") else "cpu"
    binding = session.io_binding()
    binding.bind_ortvalue_input("a", ort.OrtValue.ortvalue_from_numpy(a, device, 0))
    binding.bind_output("c", device)
    seconds = best_seconds_per_call(lambda: session.run_with_iobinding(binding))
    return {"engine": f"onnxruntime MatMul ({session.get_providers()[0]})",
            "shape": [rows, inner, cols], "flop_per_s": 2 * rows * inner * cols / seconds}


def numpy_matmul_peak(rows: int = PEAK_SHAPE[0], inner: int = PEAK_SHAPE[1],
                      cols: int = PEAK_SHAPE[2]) -> dict:
    """FLOP/s of numpy's float32 matmul of the same shape (its BLAS, its thread setting)."""
    rng = np.random.default_rng(2)
    a = rng.standard_normal((rows, inner)).astype(np.float32)
    b = rng.standard_normal((inner, cols)).astype(np.float32)
    seconds = best_seconds_per_call(lambda: a @ b)
    return {"engine": "numpy matmul", "shape": [rows, inner, cols],
            "flop_per_s": 2 * rows * inner * cols / seconds}


def describe_terms(terms: dict) -> str:
    """'per start X MFLOP, per frame Y MFLOP' for printing."""
    return (f"per start {terms['per_start'] / 1e6:.4f} MFLOP, per frame "
            f"{terms['per_frame'] / 1e6:.4f} MFLOP"
            + (f", per call {terms['per_call']}" if terms.get("per_call") else "")
            + (f", per time {terms['per_time']}" if terms.get("per_time") else ""))


def cpu_name() -> str:
    """The processor's model name from /proc/cpuinfo (else what ``platform`` knows)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()

"""Tiny analytic ONNX models that follow the gicnet ONNX contract (built with onnx.helper).

The base model is free flight: positions_t = x0 + v0 t, velocities_t = v0, and a potential
energy that makes the total energy exactly ``TOTAL_ENERGY_EV`` (E_pot = E_tot - E_kin(v_t)).
Options add controlled defects, each with a known effect:

* ``accel_A_per_fs2`` (3,): a uniform spurious acceleration a: positions += a t^2 / 2,
  velocities += a t (linear momentum drifts by M a t).
* ``spin_per_fs`` (3,): a spurious rotation w: velocities += t (w x x0) (angular and
  linear momentum drift).
* ``energy_error_eV``: the total energy drifts by energy_error_eV * t / tc within a segment.
* ``damage``: a hidden marker h, stored in the z distance of atoms 1 and 0 relative to
  the reference geometry (``MARKER_STEP_A`` per unit).  Each segment sets h to ``damage``
  and adds ``MARKER_GAIN_EV * h_in * t / tc`` to the total energy: a member with damage 1
  makes the *next* segment's energy error large, whichever member predicts it.
* ``growth``: positions scale as x0 (1 + growth t / tc): the molecule flies apart.
* ``nan_after_fs``: every output is NaN for t > nan_after_fs.
* ``damping``: the velocities scale as v0 (1 - damping t / tc) and the positions follow
  them, x0 + v0 (t - damping t^2 / (2 tc)): damping 1 stops every atom at tc (from then on
  the molecule is frozen), a negative damping heats it up.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from gicnet_runtime.core.description import ModelDescription
from gicnet_runtime.core.probe import probe_feed
from gicnet_runtime.units import AMU_A2_PER_FS2_IN_EV

ETHANOL_Z = (6, 6, 8, 1, 1, 1, 1, 1, 1)
ETHANOL_MASSES_AMU = (12.011, 12.011, 15.999, 1.008, 1.008, 1.008, 1.008, 1.008, 1.008)
#: A reasonable ethanol geometry, Å (C methyl, C methylene, O, 3 H methyl, 2 H methylene, H O).
ETHANOL_POSITIONS_A = np.array([
    [1.1879, -0.3829, 0.0000], [0.0000, 0.5526, 0.0000], [-1.1867, -0.2472, 0.0000],
    [2.0985, 0.2306, 0.0000], [1.1184, -1.0093, 0.8869], [1.1184, -1.0093, -0.8869],
    [0.0783, 1.1877, 0.8861], [0.0783, 1.1877, -0.8861], [-1.9237, 0.3850, 0.0000],
])
ETHANOL_IC_ROWS = ((0, -1, -2, -3), (1, 0, -1, -2), (2, 1, 0, -1), (3, 0, 1, 2), (4, 0, 1, 2),
                   (5, 0, 1, 2), (6, 1, 0, 2), (7, 1, 0, 2), (8, 2, 1, 0))
TC_FS = 10.0
TOTAL_ENERGY_EV = -10.0
MARKER_STEP_A = 0.01
MARKER_GAIN_EV = 1.0
_MARKER_REF_A = ETHANOL_POSITIONS_A[1, 2] - ETHANOL_POSITIONS_A[0, 2]


def description(tc_fs: float = TC_FS, has_energy: bool = True) -> ModelDescription:
    return ModelDescription(
        atomic_numbers=ETHANOL_Z, masses_amu=ETHANOL_MASSES_AMU, ic_rows=ETHANOL_IC_ROWS,
        dummy_points_A=((0.0, 0.0, 0.0), (0.0, 0.0, 1.0), (1.0, 0.0, 1.0)), tc_fs=tc_fs,
        gate_width_fs=0.32, has_energy=has_energy, provenance={"fixture": "analytic"})


class _Graph:
    """Accumulates nodes and constants; every helper returns its output's name."""

    def __init__(self) -> None:
        self.nodes, self.inits, self._n = [], [], 0

    def _name(self) -> str:
        self._n += 1
        return f"n{self._n}"

    def const(self, value) -> str:
        name = self._name()
        array = np.asarray(value)
        array = array.astype(np.int64 if array.dtype.kind == "i" else np.float32)
        self.inits.append(numpy_helper.from_array(array, name))
        return name

    def op(self, kind: str, *inputs: str, out: str | None = None, **attrs) -> str:
        out = out or self._name()
        self.nodes.append(helper.make_node(kind, list(inputs), [out], **attrs))
        return out


def write_model(path: Path, *, tc_fs: float = TC_FS, has_energy: bool = True,
                accel_A_per_fs2=(0.0, 0.0, 0.0), spin_per_fs=(0.0, 0.0, 0.0),
                energy_error_eV: float = 0.0, damage: float | None = None,
                growth: float = 0.0, nan_after_fs: float | None = None,
                spare_load_check: bool = False, damping: float = 0.0) -> Path:
    """Write an analytic model to ``path`` (see the module docstring) and return the path.

    ``spare_load_check``: with ``nan_after_fs``, the outputs stay finite from the start the
    load check runs (gicnet_runtime/core/probe.py), so that the file loads and fails only
    from other starts: a state-dependent failure, which the load check cannot see.
    """
    g = _Graph()
    x = g.op("Unsqueeze", "positions", g.const([1]))            # (B, 1, N, 3)
    v = g.op("Unsqueeze", "velocities", g.const([1]))           # (B, 1, N, 3)
    t = g.op("Unsqueeze", "times", g.const([2, 3]))             # (B, K, 1, 1)
    tau = g.op("Div", t, g.const(tc_fs))                        # t / tc
    scale = g.op("Add", g.const(1.0), g.op("Mul", tau, g.const(growth)))
    flight = t if damping == 0.0 else g.op(
        "Sub", t, g.op("Mul", g.op("Mul", t, tau), g.const(0.5 * damping)))
    pos = g.op("Add", g.op("Mul", x, scale), g.op("Mul", v, flight))
    accel = g.const(np.asarray(accel_A_per_fs2))
    pos = g.op("Add", pos, g.op("Mul", g.op("Mul", t, t), g.op("Mul", accel, g.const(0.5))))
    slowed = v if damping == 0.0 else g.op(
        "Mul", v, g.op("Sub", g.const(1.0), g.op("Mul", tau, g.const(damping))))
    vel = g.op("Add", slowed, g.op("Mul", t, accel))
    vel = g.op("Add", vel, g.op("Mul", t, g.op("MatMul", x, g.const(_cross_matrix(spin_per_fs)))))
    error = g.op("Mul", tau, g.const(energy_error_eV))          # (B, K, 1, 1) eV
    if damage is not None:
        pos, error = _marker(g, x, tau, pos, error, damage)
    if nan_after_fs is not None:
        margin = g.op("Sub", g.const(nan_after_fs), t)
        if spare_load_check:
            margin = g.op("Add", margin, _at_probe_start(g, x, description(tc_fs, has_energy)))
        poison = g.op("Mul", g.op("Sqrt", margin), g.const(0.0))
        pos, vel = g.op("Add", pos, poison), g.op("Add", vel, poison)
        error = g.op("Add", error, poison)
    g.op("Identity", pos, out="positions_t")
    g.op("Identity", vel, out="velocities_t")
    outputs = ["positions_t", "velocities_t"]
    if has_energy:
        half_m = g.const(0.5 * np.asarray(ETHANOL_MASSES_AMU)[:, None] * AMU_A2_PER_FS2_IN_EV)
        kinetic = g.op("ReduceSum", g.op("Mul", g.op("Mul", vel, vel), half_m), g.const([2, 3]),
                       keepdims=0)
        error2d = g.op("Squeeze", error, g.const([2, 3]))
        g.op("Add", g.op("Sub", g.const(TOTAL_ENERGY_EV), kinetic), error2d, out="energy_t")
        outputs.append("energy_t")
    return _save(g, path, outputs, description(tc_fs, has_energy))


def _marker(g: _Graph, x: str, tau: str, pos: str, error: str, damage: float):
    """Set the hidden marker to ``damage`` over the segment; the input marker costs energy."""
    z1 = g.op("Slice", x, g.const([1, 2]), g.const([2, 3]), g.const([2, 3]))   # (B,1,1,1)
    z0 = g.op("Slice", x, g.const([0, 2]), g.const([1, 3]), g.const([2, 3]))
    h_in = g.op("Div", g.op("Sub", g.op("Sub", z1, z0), g.const(_MARKER_REF_A)),
                g.const(MARKER_STEP_A))
    shift = g.op("Mul", g.op("Mul", g.op("Sub", g.const(damage), h_in), tau),
                 g.const(MARKER_STEP_A))                                         # (B,K,1,1) Å
    mask = np.zeros((len(ETHANOL_Z), 3))
    mask[1, 2] = 1.0
    pos = g.op("Add", pos, g.op("Mul", shift, g.const(mask)))
    error = g.op("Add", error, g.op("Mul", g.op("Mul", h_in, tau), g.const(MARKER_GAIN_EV)))
    return pos, error


#: Closer than this to the load check's start counts as that start, Å; the margin the
#: poison then gets, fs (beyond any time asked for).
_PROBE_MATCH_A, _PROBE_MARGIN_FS = 1e-3, 1e6


def _at_probe_start(g: _Graph, x: str, desc: ModelDescription) -> str:
    """(B, 1, 1, 1): ``_PROBE_MARGIN_FS`` where the start x (B, 1, N, 3) is the load
    check's start for ``desc``, else 0."""
    start = probe_feed(desc)["positions"][0]
    gap = g.op("ReduceMax", g.op("Abs", g.op("Sub", x, g.const(start))), axes=[2, 3],
               keepdims=1)
    near = g.op("Cast", g.op("Less", gap, g.const(_PROBE_MATCH_A)), to=TensorProto.FLOAT)
    return g.op("Mul", near, g.const(_PROBE_MARGIN_FS))


def _cross_matrix(w) -> np.ndarray:
    """S with x @ S = w x x for row vectors x."""
    wx, wy, wz = w
    return np.array([[0.0, wz, -wy], [-wz, 0.0, wx], [wy, -wx, 0.0]])


def _save(g: _Graph, path: Path, outputs: list[str], desc: ModelDescription) -> Path:
    f = TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("positions", f, ["B", len(ETHANOL_Z), 3]),
              helper.make_tensor_value_info("velocities", f, ["B", len(ETHANOL_Z), 3]),
              helper.make_tensor_value_info("times", f, ["B", "K"])]
    shapes = {"positions_t": ["B", "K", len(ETHANOL_Z), 3],
              "velocities_t": ["B", "K", len(ETHANOL_Z), 3], "energy_t": ["B", "K"]}
    outs = [helper.make_tensor_value_info(name, f, shapes[name]) for name in outputs]
    graph = helper.make_graph(g.nodes, "gicnet_fixture", inputs, outs, initializer=g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, desc.to_metadata())
    onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, str(path))
    return path


def thermal_velocities(seed: int = 0, scale_A_per_fs: float = 0.01, count: int | None = None):
    """Random velocities, Å/fs: (N, 3), or (count, N, 3) when count is given."""
    rng = np.random.default_rng(seed)
    shape = (len(ETHANOL_Z), 3) if count is None else (count, len(ETHANOL_Z), 3)
    return rng.normal(0.0, scale_A_per_fs, shape) / np.sqrt(np.asarray(ETHANOL_MASSES_AMU))[:, None]


def identity_model(path: Path, metadata: dict[str, str] | None = None,
                   output: str = "positions_t") -> Path:
    """A valid ONNX graph on the contract's input names that copies ``positions`` to
    ``output``, with the given metadata_props (None: a foreign, undescribed model)."""
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
              for n in ("positions", "velocities", "times")]
    out = helper.make_tensor_value_info(output, TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node("Identity", ["positions"], [output])], "g",
                              inputs, [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if metadata:
        helper.set_model_props(model, metadata)
    onnx.save(model, str(path))
    return path


def external_data_model(path: Path, location: str) -> Path:
    """A described model whose one initializer (3 floats) is external data at ``location``
    (as written in the file: relative to the model's folder, or absolute)."""
    weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[3],
                         data_location=TensorProto.EXTERNAL)
    entry = weight.external_data.add()
    entry.key, entry.value = "location", location
    f = TensorProto.FLOAT
    graph = helper.make_graph([helper.make_node("Add", ["positions", "w"], ["positions_t"])],
                              "external", [helper.make_tensor_value_info("positions", f, [3])],
                              [helper.make_tensor_value_info("positions_t", f, [3])],
                              initializer=[weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, description().to_metadata())
    onnx.save(model, str(path))
    return path


def with_metadata(source: Path, path: Path, metadata: dict[str, str]) -> Path:
    """A copy of the model file ``source`` at ``path`` whose metadata_props are exactly
    ``metadata`` (raw JSON strings, so that malformed values can be written)."""
    model = onnx.load(str(source))
    del model.metadata_props[:]
    helper.set_model_props(model, metadata)
    onnx.save(model, str(path))
    return Path(path)

"""Fuzzing the geometry: random tensors (any shape, float32/float64, NaN, inf, huge values)
into the torch GIC transforms and the runtime's geometry checks.  A transform may return
NaN for a degenerate input, but never fails with anything but gicnet's own errors, and
valid shapes give outputs of the documented shapes."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gicnet_runtime.core.icdef import ICDefinition, check_geometry, reference_angles_deg
from gicnet_runtime.errors import GicnetError
from gicnet_train import geometry as geo
from tests.onnx_fixtures import ETHANOL_IC_ROWS, ETHANOL_MASSES_AMU

FUZZ = settings(max_examples=40, deadline=None, derandomize=True)
ICDEF = ICDefinition(ETHANOL_IC_ROWS)
MASSES = torch.tensor(ETHANOL_MASSES_AMU, dtype=torch.float64)
N = ICDEF.n_atoms
VALUES = st.floats(allow_nan=True, allow_infinity=True, width=32) | st.floats(-10, 10)


def _shapes(valid_last: tuple[int, int]):
    """Mostly (..., N, 3); sometimes a wrong atom count or last axis."""
    batch = st.lists(st.integers(0, 3), max_size=2).map(tuple)
    last = st.sampled_from([valid_last, valid_last, (valid_last[0] - 1, 3), (valid_last[0], 2),
                            (0, 3)])
    return st.tuples(batch, last).map(lambda s: s[0] + s[1])


@st.composite
def tensors(draw, valid_last=(N, 3), same_shape_as=None):
    shape = same_shape_as if same_shape_as is not None else draw(_shapes(valid_last))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    array = draw(hnp.arrays(dtype, shape, elements=VALUES.map(dtype)))
    return torch.from_numpy(array)


def _only_gicnet_errors(call):
    try:
        return call()
    except GicnetError as err:
        assert "\n" not in str(err)
        return None


@st.composite
def pairs(draw):
    x = draw(tensors())
    same = draw(st.booleans())
    v = draw(tensors(same_shape_as=tuple(x.shape))) if same else draw(tensors())
    return x, (v.to(x.dtype) if same else v)


@FUZZ
@given(pair=pairs())
def test_cartesian_to_internal_and_back(pair):
    x, v = pair
    out = _only_gicnet_errors(lambda: geo.cartesian_to_internal(x, v, ICDEF))
    if out is None:
        return
    q, q_dot = out
    assert q.shape == x.shape and q_dot.shape == x.shape
    back = _only_gicnet_errors(lambda: geo.internal_to_cartesian(q, q_dot, ICDEF))
    assert back is not None and back[0].shape == x.shape


@FUZZ
@given(pair=pairs())
def test_to_internal_and_to_cartesian_in_the_lab_frame(pair):
    x, v = pair
    out = _only_gicnet_errors(lambda: geo.to_internal(x, v, MASSES.to(x.dtype), ICDEF))
    if out is None:
        return
    q, q_dot, frame = out
    assert q.shape == x.shape and frame.rotation.shape == x.shape[:-2] + (3, 3)
    pos, vel = geo.to_cartesian(q, q_dot, ICDEF, frame)
    assert pos.shape == x.shape and vel.shape == x.shape


@FUZZ
@given(q=tensors(), q_dot=tensors())
def test_internal_to_cartesian_with_any_shapes(q, q_dot):
    _only_gicnet_errors(lambda: geo.internal_to_cartesian(q, q_dot.to(q.dtype), ICDEF))


@FUZZ
@given(phi=tensors(valid_last=(4, 3)), ref=tensors(valid_last=(4, 3)))
def test_angle_helpers_stay_in_range(phi, ref):
    wrapped = geo.wrap_angle(phi)
    finite = torch.isfinite(wrapped)
    assert torch.all(wrapped[finite].abs() <= torch.pi + 1e-6)
    if phi.shape == ref.shape:
        geo.unwrap_dihedral(phi, ref.to(phi.dtype))


@FUZZ
@given(x=tensors())
def test_runtime_geometry_check(x):
    positions = x.numpy().astype(np.float64)
    _only_gicnet_errors(lambda: check_geometry(positions, np.array(ETHANOL_MASSES_AMU), ICDEF))
    if positions.shape[-2:] == (N, 3):
        with np.errstate(all="ignore"):
            angles = reference_angles_deg(positions, np.array(ETHANOL_MASSES_AMU), ICDEF)
        assert angles.shape == positions.shape[:-2] + (N, 2)

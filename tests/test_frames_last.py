"""The exported graph's frames-last conversion (gicnet_train.model.lab_frame_outputs_frames_last)
against the training layout it replaces, in float64 torch: the same positions, velocities
and energies from the same model, with and without a member axis."""

import numpy as np
import pytest
import torch

from gicnet_train import geometry as g
from gicnet_train.config import ModelConfig
from gicnet_train.energy import EnergyModel
from gicnet_train.mlp import MLP
from gicnet_train.model import GICnet, lab_frame_outputs, lab_frame_outputs_frames_last
from tests.test_geometry import ETHANOL, ethanol_icdef

#: Both layouts do the same float64 arithmetic except the order of the rotation's three
#: products (MatMul against an explicit sum): differences are rounding, ~1e-15 Å.
TOL = 1e-12


def _frames_last(x: torch.Tensor) -> torch.Tensor:
    """(F, N, 3) -> (N, 3, F)."""
    return x.permute(1, 2, 0)


def test_internal_to_cartesian_frames_last_equals_atoms_last():
    icdef = ethanol_icdef()
    rng = np.random.default_rng(5)
    pos = torch.tensor(ETHANOL.positions + rng.normal(scale=0.05, size=(40, 9, 3)))
    vel = torch.tensor(rng.normal(scale=0.01, size=(40, 9, 3)))
    pos -= pos.mean(1, keepdim=True)
    q, q_dot = g.cartesian_to_internal(pos, vel, icdef)
    want = g.internal_to_cartesian(q, q_dot, icdef)
    got = g.internal_to_cartesian(_frames_last(q), _frames_last(q_dot), icdef, g.FRAMES_LAST)
    for w, x in zip(want, got, strict=True):
        torch.testing.assert_close(_frames_last(w), x, rtol=0, atol=TOL)
    # and the round trip itself, so the comparison is not between two wrong answers
    torch.testing.assert_close(want[0], pos, rtol=0, atol=1e-9)


def test_frames_last_shape_error_names_the_layout():
    with pytest.raises(Exception, match=r"\(9, 3, \.\.\.\)"):
        g.internal_to_cartesian(torch.zeros(9, 2, 4), torch.zeros(9, 2, 4), ethanol_icdef(),
                                g.FRAMES_LAST)


@pytest.fixture(scope="module")
def model_and_energy():
    """An untrained ethanol model with random (non-zero) weights and an energy model."""
    torch.manual_seed(0)
    icdef = ethanol_icdef()
    model = GICnet(icdef, ETHANOL.get_masses(), ModelConfig(hidden=(32, 16), n_basis=6))
    for p in model.net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    model.out_scale.fill_(0.01)
    energy = EnergyModel(9, hidden=(16, 8))
    energy.e_mean.fill_(-4000.0)
    return model.double(), energy.double()


@pytest.mark.parametrize("members", [0, 3])
def test_lab_frame_outputs_frames_last_equal_the_atoms_last_outputs(model_and_energy, members):
    model, energy = model_and_energy
    rng = np.random.default_rng(members)
    n_b, n_k = 4, 7
    pos = torch.tensor(ETHANOL.positions + rng.normal(scale=0.05, size=(n_b, 9, 3)) + 3.0)
    vel = torch.tensor(rng.normal(scale=0.01, size=(n_b, 9, 3)))
    times = torch.tensor(rng.uniform(0, 10, (n_b, n_k)))
    times[:, 0] = 0.0
    q0, q0_dot, frame = g.to_internal(pos, vel, model.masses.double(), model.icdef)
    with torch.no_grad():
        q, q_dot = model.internal(q0, q0_dot, times)
        if members:  # members differ: a different offset each
            shift = torch.arange(members, dtype=q.dtype)[:, None, None, None, None] * 1e-3
            q, q_dot = q + shift, q_dot + shift
        want = lab_frame_outputs(q, q_dot, model.icdef, frame, times, energy)
        got = lab_frame_outputs_frames_last(q, q_dot, model.icdef, frame, times, energy)
    lead = (members,) if members else ()
    assert [tuple(x.shape) for x in got] == [lead + (n_b, n_k, 9, 3)] * 2 + [lead + (n_b, n_k)]
    for w, x in zip(want, got, strict=True):
        torch.testing.assert_close(x, w, rtol=0, atol=TOL * max(1.0, float(w.abs().max())))
    # at t = 0 the gate returns the start itself: an independent check of the frame
    # (rotation, centre of mass) both layouts share
    if not members:
        torch.testing.assert_close(got[0][:, 0], pos, rtol=0, atol=1e-9)
        torch.testing.assert_close(got[1][:, 0], vel, rtol=0, atol=1e-9)


def test_mlp_on_columns_equals_the_mlp_on_rows():
    torch.manual_seed(1)
    mlp = MLP(5, (7, 4), 3).double()
    x = torch.randn(11, 5, dtype=torch.float64)
    torch.testing.assert_close(mlp.forward_columns(x.t()).t(), mlp(x), rtol=0, atol=1e-14)


def test_energy_on_columns_equals_the_energy_on_rows(model_and_energy):
    _, energy = model_and_energy
    rng = np.random.default_rng(2)
    pos = torch.tensor(ETHANOL.positions + rng.normal(scale=0.05, size=(6, 9, 3)))
    with torch.no_grad():
        torch.testing.assert_close(energy.forward_columns(_frames_last(pos)), energy(pos),
                                   rtol=0, atol=1e-9)

"""A start given exactly in its own body frame (centre of mass at the origin, first IC
atom on +x, second in the xy plane) comes back unchanged at t = 0 from the exported graph.

It did not (3.2 Å off for held-out start 4, found by the load probe): torch exports atan2
as atan(y / x) corrected where x < 0, which is -pi/2 instead of +pi/2 at x = -0.0, and such
a start makes a dihedral's x exactly -0.0 (gicnet_train.geometry.atan2 fixes it)."""

import numpy as np
import pytest
import torch

from gicnet_runtime import load_model, read_initial_conditions
from gicnet_runtime.core.icdef import ICDefinition, body_frame_rotation
from gicnet_runtime.core.mechanics import centre_of_mass
from gicnet_runtime.core.model import DEFAULT_MODEL_DIR


@pytest.mark.parametrize("member", [0, 1])
def test_a_start_given_in_its_body_frame_is_returned_at_t0(member):
    model = load_model(DEFAULT_MODEL_DIR / "members" / f"member_{member}.onnx", device="cpu")
    desc = model.description
    init = read_initial_conditions(DEFAULT_MODEL_DIR / "initial.extxyz")
    masses = np.asarray(desc.masses_amu)
    lab = init.positions[4]
    body = (lab - centre_of_mass(lab, masses)) @ body_frame_rotation(
        lab, masses, ICDefinition(desc.ic_rows)).T
    for start in (lab, body):
        out = model.run(start[None], init.velocities[4][None], np.zeros((1, 1)))
        np.testing.assert_allclose(out["positions_t"][0, 0, 0], start, atol=1e-4)


def test_atan2_gives_the_angle_of_negative_zero_x_after_onnx_export(tmp_path):
    """The exported atan2 at x = -0.0 equals torch's (+pi/2 for y > 0, -pi/2 for y < 0)."""
    import onnxruntime as ort

    from gicnet_train.geometry import atan2

    class Atan2(torch.nn.Module):
        def forward(self, y, x):
            return atan2(y, x)

    path = tmp_path / "atan2.onnx"
    y = torch.tensor([1.0, -1.0, 1.0, 0.5])
    x = torch.tensor([-0.0, -0.0, -1.0, 2.0])
    torch.onnx.export(Atan2(), (y, x), str(path), input_names=["y", "x"], dynamo=False)
    got = ort.InferenceSession(str(path)).run(None, {"y": y.numpy(), "x": x.numpy()})[0]
    np.testing.assert_allclose(got, torch.atan2(y, x).numpy(), atol=1e-6)

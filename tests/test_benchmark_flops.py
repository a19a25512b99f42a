"""benchmarks/hardware.py's MatMul FLOP count: the count read off the shipped graphs equals
the count from the layer widths, and the widths' count is the hand-written sum."""

from __future__ import annotations

import pytest

from benchmarks import hardware

pytest.importorskip("onnx")

ENSEMBLE = "exported/ethanol/ensemble.onnx"
MEMBER = "exported/ethanol/members/member_0.onnx"


@pytest.mark.parametrize("path, variant", [(ENSEMBLE, "stacked_shared_inputs, frames last"),
                                           (MEMBER, "side_by_side, frames last")])
def test_graph_count_equals_the_count_from_the_widths(path, variant):
    report = hardware.flops_report(path, 20)
    assert report["graph_terms"]["check_ok"]
    assert report["analytic_variant_matching_graph"] == variant


def test_per_frame_count_is_the_energy_mlp_and_the_basis_contractions():
    arch = hardware.architecture(hardware.metadata(MEMBER))
    n, n_basis = arch["n_atoms"], arch["n_basis"]
    widths = (n * (n - 1) // 2, *arch["energy_hidden"], 1)
    energy = 2 * sum(a * b for a, b in zip(widths, widths[1:]))
    basis = 2 * 2 * n_basis * 3 * n          # value and time derivative, (K, nb) x (nb, 3N)
    rotations = 2 * 2 * n * 3 * 3            # positions and velocities, (N, 3) x (3, 3)
    terms = hardware.analytic_terms(arch, matmul_rotations_back=False)
    assert terms["per_frame"] == energy + basis
    assert hardware.analytic_terms(arch)["per_frame"] == energy + basis + rotations

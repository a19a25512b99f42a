"""Cis/trans outcomes from a dihedral, their fractions and the agreement of two sets."""

import numpy as np
import pytest

from gicnet_runtime.analysis.isomers import (
    CIS,
    TRANS,
    UNDECIDED,
    agreement,
    cis_fraction,
    isomer,
    outcome,
    transition_frame,
)
from gicnet_runtime.core.internal import dihedrals
from gicnet_runtime.errors import InputError


def _cnnc(phi_deg: float) -> np.ndarray:
    """Four atoms C-N=N-C with the CNNC dihedral ``phi_deg``."""
    phi = np.deg2rad(phi_deg)
    return np.array([[1.2, 0.8, 0.0], [0.0, 0.6, 0.0], [0.0, -0.6, 0.0],
                     [1.2 * np.cos(phi), -0.8, 1.2 * np.sin(phi)]])


@pytest.mark.parametrize(("phi", "expected"), [(5, CIS), (-60, CIS), (120, TRANS),
                                                (-179, TRANS), (180, TRANS), (89, CIS)])
def test_isomer_of_a_built_geometry(phi, expected):
    measured = dihedrals(_cnnc(phi)[None], 0, 1, 2, 3)[0]
    assert np.rad2deg(abs(measured)) == pytest.approx(abs(phi), abs=1e-6)
    assert isomer(measured) == expected


def test_outcome_needs_the_last_frames_clear_of_the_dividing_line():
    crossing = np.deg2rad(np.linspace(10, 170, 50))  # cis -> trans over the run
    assert outcome(crossing, window=5) == TRANS
    assert outcome(crossing[:26], window=5) == UNDECIDED  # ends at ~90°
    assert outcome(-crossing[::-1], window=10) == CIS
    assert outcome(np.deg2rad([100.0, 80.0, 100.0]), window=1) == UNDECIDED  # 100° < 110°
    assert outcome(np.deg2rad([100.0, 80.0, 100.0]), window=1, margin_rad=0.1) == TRANS
    with pytest.raises(InputError):
        outcome(crossing, window=0)
    with pytest.raises(InputError):
        outcome(np.array([np.nan]))


def test_fractions_with_binomial_errors():
    outcomes = [CIS] * 3 + [TRANS] * 9 + [UNDECIDED] * 2
    fraction = cis_fraction(outcomes)
    assert (fraction.count, fraction.total, fraction.undecided) == (3, 12, 2)
    assert fraction.value == pytest.approx(0.25)
    assert fraction.standard_error == pytest.approx(np.sqrt(0.25 * 0.75 / 12))
    agree = agreement([CIS, TRANS, TRANS, UNDECIDED], [CIS, CIS, TRANS, TRANS])
    assert (agree.count, agree.total, agree.undecided) == (2, 3, 1)
    assert np.isnan(cis_fraction([UNDECIDED]).value)
    with pytest.raises(InputError):
        agreement([CIS], [CIS, TRANS])


def test_transition_frame_is_after_the_last_crossing_of_the_dividing_line():
    # cis -> trans at frame 3 (80° -> 100°), back to cis at 6, trans again for good at 8;
    # the sign flips of a near-planar trans (179° -> -179°) are not crossings.
    phi = np.deg2rad([10, 40, 80, 100, 120, 95, 85, 60, 92, 179, -179, 170])
    assert transition_frame(phi) == 8
    measured = dihedrals(np.stack([_cnnc(p) for p in np.rad2deg(phi)]), 0, 1, 2, 3)
    assert transition_frame(measured) == 8
    assert transition_frame(np.deg2rad([170.0, -175.0, 178.0])) is None
    assert transition_frame(np.deg2rad([30.0])) is None
    with pytest.raises(InputError):
        transition_frame(np.array([0.1, np.inf]))

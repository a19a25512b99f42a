"""The end-of-training verdict: baseline ratios, over-fitting and the energy model's worth."""

import math

from gicnet_train.verdict import CLEAR_MARGIN, verdict

BASELINE = {"bond_rmse": 0.1, "angle_rmse": 0.075, "dihedral_rmse": 0.08}


def member(bond, angle, dihedral, best=1.0, last=1.0, seed=0):
    return {"seed": seed, "baseline_linear": BASELINE,
            "validation": {"bond_rmse": bond, "angle_rmse": angle, "dihedral_rmse": dihedral},
            "training": {"best_val_loss": best, "last_val_loss": last, "best_epoch": 3}}


GOOD_ENERGY = {"val_rmse_eV": 0.002, "val_std_eV": 0.1}


def test_a_clearly_better_member_and_energy_model_pass():
    result = verdict({"members": [member(0.002, 0.004, 0.008)], "energy": GOOD_ENERGY})
    assert result["ok"] and result["warnings"] == []
    ratios = result["members"][0]["baseline_over_model"]
    assert math.isclose(ratios["bond"], 50.0) and math.isclose(ratios["dihedral"], 10.0)
    assert math.isclose(result["energy"]["rmse_over_spread"], 0.02)


def test_a_member_near_the_baseline_is_flagged_with_its_worst_term():
    worse = BASELINE["dihedral_rmse"] / (CLEAR_MARGIN - 1)
    result = verdict({"members": [member(0.002, 0.004, worse, seed=7)], "energy": GOOD_ENERGY})
    assert not result["ok"]
    (warning,) = result["warnings"]
    assert "member seed 7" in warning and "dihedral" in warning and "2.0x" in warning


def test_rising_validation_loss_is_over_fitting():
    result = verdict({"members": [member(0.002, 0.004, 0.008, best=0.1, last=0.2)],
                      "energy": GOOD_ENERGY})
    assert len(result["warnings"]) == 1 and "over-fitting" in result["warnings"][0]


def test_non_finite_validation_and_a_useless_energy_model_are_flagged():
    result = verdict({"members": [member(float("nan"), 0.004, 0.008)],
                      "energy": {"val_rmse_eV": 0.11, "val_std_eV": 0.1}})
    assert len(result["warnings"]) == 2
    assert "no finite validation result" in result["warnings"][0]
    assert "no better than the mean" in result["warnings"][1]

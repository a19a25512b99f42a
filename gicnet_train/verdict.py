"""The verdict at the end of training: is the model clearly better than doing nothing?

Two "do nothing" references: the frozen baseline M0 + v0 t (every coordinate moves on
at its initial rate) for the GICnet members, and the mean of the data's potential
energies for the energy model.  A run is flagged, loudly, when a member is not clearly
better than the frozen baseline, when its validation loss rose after its best epoch
(over-fitting), or when the energy model is not clearly better than the mean.
"""

from __future__ import annotations

import math

#: A member must beat the frozen baseline's bond, angle and dihedral RMSE by this factor.
CLEAR_MARGIN = 3.0
#: Validation loss at the last epoch above best * (1 + OVERFIT_RTOL): the loss rose.
OVERFIT_RTOL = 0.05
#: Energy model validation RMSE above this fraction of the energies' spread: no better
#: than predicting the mean, to any use (a 1-sigma error is what the mean itself gives).
ENERGY_MAX_FRACTION = 0.5
TERMS = ("bond", "angle", "dihedral")


def validation_errors(final: dict) -> list:
    """A member's validation bond, angle and dihedral RMSE from its final.json (None where
    missing)."""
    return [final.get("validation", {}).get(f"{t}_rmse") for t in TERMS]


def has_finite_validation(final: dict) -> bool:
    """Whether a member's final.json holds finite bond, angle and dihedral RMSEs."""
    return all(isinstance(e, (int, float)) and math.isfinite(e)
               for e in validation_errors(final))


def member_verdict(final: dict) -> dict[str, object]:
    """Ratios baseline / model per term and the warnings for one member's final.json."""
    v, b = final.get("validation", {}), final.get("baseline_linear", {})
    warnings = []
    ratios = {t: b[f"{t}_rmse"] / v[f"{t}_rmse"] for t in TERMS
              if f"{t}_rmse" in b and math.isfinite(v.get(f"{t}_rmse", math.nan))
              and v[f"{t}_rmse"] > 0}
    name = f"member seed {final.get('seed')}"
    if not has_finite_validation(final):
        warnings.append(f"{name} has no finite validation result")
    elif min(ratios.values()) < CLEAR_MARGIN:
        worst = min(ratios, key=ratios.get)
        warnings.append(f"{name} is not clearly better than the frozen baseline: its {worst} "
                        f"error is only {ratios[worst]:.1f}x below it (want >= {CLEAR_MARGIN:g}x)")
    training = final.get("training", {})
    best, last = training.get("best_val_loss"), training.get("last_val_loss")
    if best is not None and last is not None and last > best * (1 + OVERFIT_RTOL):
        warnings.append(f"{name}: validation loss rose from {best:.4g} (epoch "
                        f"{training.get('best_epoch')}) to {last:.4g} (over-fitting; the best "
                        "checkpoint is kept: more data or fewer epochs)")
    return {"seed": final.get("seed"), "baseline_over_model": ratios, "warnings": warnings}


def energy_verdict(metrics: dict) -> dict[str, object]:
    """The energy model's validation RMSE against the spread of the validation energies."""
    rmse, spread = metrics.get("val_rmse_eV", math.nan), metrics.get("val_std_eV", math.nan)
    fraction = rmse / spread if spread > 0 else math.nan
    warnings = []
    if not math.isfinite(fraction) or fraction > ENERGY_MAX_FRACTION:
        warnings.append(f"the energy model is no better than the mean: validation RMSE "
                        f"{rmse:.4g} eV against an energy spread of {spread:.4g} eV "
                        f"(want <= {ENERGY_MAX_FRACTION:g}x); energy-based member choice and "
                        "energy restoration will be unreliable")
    return {"val_rmse_eV": rmse, "val_std_eV": spread, "rmse_over_spread": fraction,
            "warnings": warnings}


def verdict(summary: dict) -> dict[str, object]:
    """The whole run's verdict from its summary (``energy`` metrics and ``members``)."""
    members = [member_verdict(m) for m in summary.get("members", [])]
    energy = energy_verdict(summary.get("energy") or {})
    warnings = [w for m in members for w in m["warnings"]] + energy["warnings"]
    return {"ok": not warnings, "warnings": warnings, "members": members, "energy": energy}

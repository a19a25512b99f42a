"""``gicnet evaluate`` end to end: run the measurements of
:mod:`gicnet_runtime.analysis.evaluate` and write report.json and PNG plots (each file
atomically) into one folder.

The reference engine (``engine``) comes from ``gicnet_runtime.reference.engines`` (tblite
for GFN2-xTB), imported only when an energy check is asked for; its calls run in ``workers`` spawned
single-threaded processes, one chunk of frames per trajectory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from gicnet_runtime.analysis import evaluate as ev
from gicnet_runtime.analysis import plots
from gicnet_runtime.analysis import spectrum as sp
from gicnet_runtime.core.icdef import ICDefinition
from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.errors import InputError
from gicnet_runtime.io.paths import trajectory_paths  # noqa: F401  (re-exported)

REPORT_NAME = "report.json"
#: progress(stage, total) -> a callable taking the number of newly finished items.
Progress = Callable[[str, int], Callable[[int], None]]


def engine_potential(engine: str, atomic_numbers: np.ndarray, workers: int = 1) -> Callable:
    """A function: list of (F, N, 3) Å position arrays -> list of (F,) potential energies, eV,
    computed with the reference ``engine`` (in this process for one worker, else in
    ``workers`` spawned processes: call it under ``if __name__ == "__main__"`` in scripts)."""
    from gicnet_runtime.reference.engines import check_elements, get_engine

    check_elements(get_engine(engine), atomic_numbers)
    numbers = np.asarray(atomic_numbers)

    def potential(chunks: Sequence[np.ndarray]) -> list[np.ndarray]:
        import concurrent.futures
        import multiprocessing

        from gicnet_runtime.reference.engines import single_threaded

        jobs = [(engine, numbers, c) for c in chunks]
        if workers == 1:
            return [_energies(job) for job in jobs]
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(
                max(1, min(workers, len(jobs))), mp_context=context,
                initializer=single_threaded) as pool:
            return list(pool.map(_energies, jobs))

    return potential


def _energies(job) -> np.ndarray:
    """Worker: potential energy (F,) eV of frames (F, N, 3) Å with a fresh calculator."""
    from ase import Atoms

    from gicnet_runtime.reference.engines import make_calculator

    engine, numbers, frames = job
    atoms = Atoms(numbers=numbers, positions=frames[0] if len(frames) else None)
    atoms.calc = make_calculator(engine)
    out = np.empty(len(frames))
    for k, pos in enumerate(frames):
        atoms.positions = pos
        try:
            out[k] = atoms.get_potential_energy()
        except Exception:  # noqa: BLE001 (a broken geometry may fail the SCC; record NaN)
            out[k] = np.nan
    return out


def run_evaluation(model, references: Sequence[Trajectory], settings: ev.EvaluationSettings,
                   out_dir: str | os.PathLike, progress: Progress | None = None
                   ) -> dict[str, object]:
    """All measurements of :mod:`gicnet_runtime.analysis.evaluate`; writes ``out_dir``/report.json,
    segment_errors.png, spectrum.png and (with an engine) energy.png.  Returns the report."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_references(model, references)
    report: dict[str, object] = {"models": [str(p) for p in model.paths],
                                 "settings": vars(settings).copy(),
                                 "n_references": len(references)}
    seg = ev.segment_errors(model, references, settings.starts_per_reference)
    report["segment_errors"] = seg
    report["segment_end_attenuation"] = ev.segment_end_attenuation(
        model, references, settings.starts_per_reference)
    plots.plot_segment_errors(out / "segment_errors.png", np.array(seg["times_fs"]),
                              {k: np.array(v) for k, v in seg.items()
                               if k.endswith(("_A", "_deg"))})
    trajectories = _long_trajectories(model, references, settings, progress)
    report["unrolling"] = _unrolling(model, trajectories[0].info)
    bonds = ev.coordinate_sets(ICDefinition(model.description.ic_rows))["bond"]
    rows = ev.stability(trajectories, bonds, ev.equilibrium_bonds_A(references, bonds),
                        settings.long_duration_fs)
    report["stability"] = {"bond_range": list(ev.BOND_RANGE), "trajectories": rows,
                           "stable": sum(r["stable"] for r in rows), "count": len(rows)}
    if settings.engine is not None:
        report["energy"] = _energy(trajectories, rows, references, settings, out)
    report["spectrum"] = _spectra([t for t, r in zip(trajectories, rows) if r["stable"]],
                                  references, settings, out)
    _write_json(out / REPORT_NAME, report)
    return report


def _unrolling(model, info: dict) -> dict[str, object]:
    """How the long trajectories were unrolled: segment length, the time-reversal
    correction's share, energy restoration and, with it, the model's share of each
    segment's deficit."""
    out = {"segment_fs": info["segment_fs"], "restore_energy": info["restore_energy"],
           "reversal_share": info.get("reversal_share", 0.0)}
    if info["restore_energy"]:
        out.update(restore_fraction=model.description.restore_fraction,
                   restore_deficit=model.description.restore_deficit)
    return out


def _check_references(model, references: Sequence[Trajectory]) -> None:
    if not references:
        raise InputError("no reference trajectories given")
    z = np.asarray(model.description.atomic_numbers)
    for k, ref in enumerate(references):
        if ref.atomic_numbers.shape != z.shape or np.any(ref.atomic_numbers != z):
            raise InputError(f"reference trajectory {k} has other atoms (or another order) "
                             "than the model")


def _long_trajectories(model, references, settings: ev.EvaluationSettings,
                       progress: Progress | None) -> list[Trajectory]:
    pos, vel = ev.long_time_starts(references, settings.long_starts)
    total = len(pos) * model.segment_count(settings.long_duration_fs, settings.long_dt_fs,
                                           settings.segment_fs)
    update = progress("propagate", total) if progress else None
    return model.propagate(pos, vel, settings.long_duration_fs, settings.long_dt_fs,
                           progress=update, restore_energy=settings.restore_energy,
                           segment_fs=settings.segment_fs, unphysical=settings.unphysical)


def _energy(trajectories, rows, references, settings: ev.EvaluationSettings,
            out: Path) -> dict[str, object]:
    """Total-energy conservation of the long trajectories' stable part (reference engine)
    and, for comparison, of the references' stored energies over the same duration."""
    potential = engine_potential(settings.engine, trajectories[0].atomic_numbers,
                                 settings.workers)
    until = [r["first_unstable_fs"] for r in rows]
    results, series = ev.energy_conservation(trajectories, potential, settings.energy_every,
                                             until)
    plots.plot_energy(out / "energy.png", [s[0] for s in series], [s[1] for s in series])
    ref_results = []
    for ref in references:
        keep = ref.time_fs <= settings.long_duration_fs
        if ref.potential_energy is not None and keep.sum() >= 2:
            ref_results.append(ev.energy_drift(ref.time_fs[keep], ref.total_energy()[keep]))
    return {
        "engine": settings.engine, "every_frames": settings.energy_every,
        "trajectories": results,
        "rms_deviation_kcal_mol": ev.summarise(
            [r and r["rms_deviation_kcal_mol"] for r in results]),
        "drift_kcal_mol_per_ps": ev.summarise(
            [r and r["drift_kcal_mol_per_ps"] for r in results]),
        "reference_rms_deviation_kcal_mol": ev.summarise(
            [r["rms_deviation_kcal_mol"] for r in ref_results]),
        "reference_drift_kcal_mol_per_ps": ev.summarise(
            [r["drift_kcal_mol_per_ps"] for r in ref_results]),
    }


def _spectra(stable: list[Trajectory], references, settings: ev.EvaluationSettings,
             out: Path) -> dict[str, object]:
    """Spectrum of the stable long trajectories against the references' spectrum."""
    if not stable:
        return {"skipped": "no long trajectory stayed stable"}
    lag = min(settings.max_lag_fs, min(t.time_fs[-1] for t in stable),
              min(r.time_fs[-1] for r in references))
    predicted = sp.power_spectrum(stable, max_lag_fs=lag, window=settings.window)
    reference = sp.power_spectrum(references, max_lag_fs=lag, window=settings.window)
    noise = None
    if len(references) >= 2:  # two halves of the references: the scores' statistical floor
        noise = sp.similarity(sp.power_spectrum(references[0::2], max_lag_fs=lag,
                                                window=settings.window),
                              sp.power_spectrum(references[1::2], max_lag_fs=lag,
                                                window=settings.window))
    peaks, ref_peaks = sp.find_peaks(predicted), sp.find_peaks(reference)
    plots.plot_spectrum(out / "spectrum.png", predicted, peaks, reference, label="model",
                        reference_label="reference")
    matches = sp.match_peaks(peaks, ref_peaks)
    shifts = [abs(m["shift_cm"]) for m in matches if m["shift_cm"] is not None]
    return {"resolution_cm": predicted.resolution_cm, "max_lag_fs": predicted.max_lag_fs,
            "n_trajectories": len(stable),
            "peaks_cm": [p.wavenumber_cm for p in peaks],
            "reference_peaks_cm": [p.wavenumber_cm for p in ref_peaks],
            "major_band_matches": matches,
            "max_abs_shift_cm": max(shifts) if shifts else None,
            "stretch_band_height_ratio": sp.band_height_ratios(predicted, reference),
            **sp.similarity(predicted, reference), "reference_halves_similarity": noise}


def _write_json(path: Path, data: dict) -> None:
    from gicnet_runtime.atomic import atomic_target
    from gicnet_runtime.io.formats import jsonable

    with atomic_target(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=jsonable) + "\n")

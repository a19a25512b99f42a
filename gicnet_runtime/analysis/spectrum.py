"""Vibrational power spectra from the velocity autocorrelation function (VACF).

For each trajectory, the VACF C(τ) = <Σ_i w_i v_i(t)·v_i(t+τ)>_t (w_i = m_i when
mass-weighted, else 1) is computed with numpy's FFT (Wiener-Khinchin, zero-padded to
avoid wrap-around) and averaged over trajectories.  Lags up to ``max_lag_fs`` are kept,
tapered by the decreasing half of a numpy window (Hann by default), mirrored into an
even sequence and zero-padded ``pad_factor``-fold before the final FFT.  The spectrum
is the cosine transform of the tapered VACF on a wavenumber grid (cm-1) up to
``max_wavenumber_cm``, normalised to unit area there.

The resolution is one bin of the unpadded transform, 1 / (max lag · c) in cm-1
(600 fs of lag: ~56 cm-1; 10 ps: ~3.3 cm-1); zero padding only interpolates.

Peaks are found with ``scipy.signal.find_peaks`` (scipy is imported on first use).
Units: time fs, velocities Å/fs, masses amu, wavenumbers cm-1.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.errors import InputError

#: Speed of light, cm/fs: a frequency f in 1/fs is f / SPEED_OF_LIGHT_CM_PER_FS in cm-1.
SPEED_OF_LIGHT_CM_PER_FS = 2.99792458e-5
MAX_WAVENUMBER_CM = 4000.0
PAD_FACTOR = 4
#: numpy window functions of length M; the spectrum uses their decreasing half.
WINDOWS = {"hann": np.hanning, "hamming": np.hamming, "blackman": np.blackman,
           "bartlett": np.bartlett, "none": np.ones}
#: Frame spacings may differ by this fraction between trajectories (rounding in files).
DT_RTOL = 1e-6
#: Default peak threshold: prominence as a fraction of the spectrum's highest value.
PEAK_PROMINENCE = 0.05
#: A reference peak at least this fraction of the highest peak is a "major band".
MAJOR_PEAK_FRACTION = 0.1
#: Below this the spectrum is dominated by rigid-body rotation, not vibration, cm-1; the
#: default lower end for peaks and similarity scores.
VIBRATION_MIN_CM = 200.0


#: Windows of the O-H and C-H stretch bands, cm-1 (where a molecule has them): their heights are
#: what a network that damps its fastest vibrations gets wrong first.
STRETCH_BANDS_CM = {"O-H stretch": (3300.0, 3900.0), "C-H stretch": (2750.0, 3250.0)}


@dataclasses.dataclass(frozen=True)
class Spectrum:
    """A power spectrum.

    Attributes:
        wavenumber_cm: (F,) cm-1, from 0 to the maximum wavenumber.
        intensity: (F,) normalised to unit area over ``wavenumber_cm``, 1/cm-1.
        resolution_cm: width of one unpadded frequency bin, cm-1.
        max_lag_fs: longest VACF lag used, fs.
        n_trajectories: how many trajectories were averaged.
        mass_weighted: whether atoms were weighted by their masses.
    """

    wavenumber_cm: np.ndarray
    intensity: np.ndarray
    resolution_cm: float
    max_lag_fs: float
    n_trajectories: int
    mass_weighted: bool


@dataclasses.dataclass(frozen=True)
class Peak:
    """A spectral peak: position cm-1, height and prominence in the spectrum's units."""

    wavenumber_cm: float
    height: float
    prominence: float


def frame_spacing_fs(trajectories: Sequence[Trajectory]) -> float:
    """The common, uniform frame spacing of ``trajectories``, fs (InputError otherwise)."""
    if not trajectories:
        raise InputError("no trajectories given for the spectrum")
    spacings = []
    for k, traj in enumerate(trajectories):
        if traj.n_frames < 4:
            raise InputError(f"trajectory {k} has {traj.n_frames} frames; a spectrum needs >= 4")
        steps = np.diff(traj.time_fs)
        if np.ptp(steps) > DT_RTOL * steps.mean() * 10 + 1e-9:
            raise InputError(f"trajectory {k} has unevenly spaced frames "
                             f"({steps.min():g}..{steps.max():g} fs)")
        spacings.append(steps.mean())
    if np.ptp(spacings) > DT_RTOL * max(spacings) * 10:
        raise InputError(f"trajectories have different frame spacings: {sorted(set(spacings))} fs")
    return float(np.mean(spacings))


def velocity_autocorrelation(velocities: np.ndarray, weights: np.ndarray,
                             max_lag: int) -> np.ndarray:
    """Unbiased VACF Σ_i w_i <v_i(t)·v_i(t+τ)> for τ = 0..max_lag-1 frames.

    velocities: (T, N, 3) Å/fs; weights: (N,) -> (max_lag,) in (weight unit)·Å²/fs².
    """
    n_frames = velocities.shape[0]
    n_fft = 1 << int(np.ceil(np.log2(2 * n_frames)))
    flat = (velocities * np.sqrt(weights)[None, :, None]).reshape(n_frames, -1)
    power = np.sum(np.abs(np.fft.rfft(flat, n=n_fft, axis=0)) ** 2, axis=1)
    corr = np.fft.irfft(power, n=n_fft)[:max_lag]
    return corr / (n_frames - np.arange(max_lag))


def power_spectrum(trajectories: Sequence[Trajectory], *, mass_weighted: bool = True,
                   max_lag_fs: float | None = None, window: str = "hann",
                   pad_factor: int = PAD_FACTOR, max_wavenumber_cm: float = MAX_WAVENUMBER_CM,
                   atoms: Sequence[int] | None = None) -> Spectrum:
    """Power spectrum averaged over trajectories (see the module docstring).

    Args:
        trajectories: same atoms, same uniform frame spacing.
        mass_weighted: weight each atom's VACF by its mass, amu.
        max_lag_fs: longest lag, fs; default the shortest trajectory's length.
        window: taper of the VACF, one of :data:`WINDOWS`.
        pad_factor: zero padding of the transform (interpolation only).
        max_wavenumber_cm: upper end of the spectrum, cm-1 (below the Nyquist limit).
        atoms: 0-based atoms to include; default all.
    """
    dt = frame_spacing_fs(trajectories)
    if window not in WINDOWS:
        raise InputError(f"unknown window {window!r}; choose one of {', '.join(WINDOWS)}")
    if pad_factor < 1:
        raise InputError(f"pad_factor must be >= 1, got {pad_factor}")
    nyquist_cm = 1.0 / (2.0 * dt * SPEED_OF_LIGHT_CM_PER_FS)
    if max_wavenumber_cm > nyquist_cm:
        raise InputError(f"frames {dt:g} fs apart resolve only up to {nyquist_cm:.0f} cm-1, "
                         f"below the requested {max_wavenumber_cm:g} cm-1")
    shortest = min(t.n_frames for t in trajectories)
    n_lag = shortest if max_lag_fs is None else int(round(max_lag_fs / dt)) + 1
    if not 4 <= n_lag <= shortest:
        raise InputError(f"max_lag_fs must lie within {3 * dt:g}..{(shortest - 1) * dt:g} fs")
    selected = slice(None) if atoms is None else np.asarray(atoms, dtype=np.int64)
    vacf = np.mean([velocity_autocorrelation(
        t.velocities[:, selected], t.masses[selected] if mass_weighted
        else np.ones_like(t.masses[selected]), n_lag) for t in trajectories], axis=0)
    tapered = vacf * WINDOWS[window](2 * n_lag - 1)[n_lag - 1:]
    n_fft = pad_factor * 2 * n_lag
    # Cosine transform of the even sequence c(|τ|): c0 + 2 Σ_τ≥1 c_τ cos(2π f τ dt).
    intensity = 2.0 * np.fft.rfft(tapered, n=n_fft).real - tapered[0]
    wavenumber = np.fft.rfftfreq(n_fft, dt) / SPEED_OF_LIGHT_CM_PER_FS
    keep = wavenumber <= max_wavenumber_cm
    if not np.any(wavenumber[keep] >= VIBRATION_MIN_CM):  # peaks and plots look only there
        raise InputError(f"the spectrum has no point between {VIBRATION_MIN_CM:g} and "
                         f"{max_wavenumber_cm:g} cm-1 (its points lie {wavenumber[1]:.0f} cm-1 "
                         "apart): raise the largest wavenumber or the longest lag")
    wavenumber, intensity = wavenumber[keep], intensity[keep]
    intensity = intensity / np.trapezoid(intensity, wavenumber)
    return Spectrum(wavenumber, intensity, 1.0 / (n_lag * dt * SPEED_OF_LIGHT_CM_PER_FS),
                    (n_lag - 1) * dt, len(trajectories), mass_weighted)


def find_peaks(spectrum: Spectrum, prominence: float = PEAK_PROMINENCE,
               min_wavenumber_cm: float = VIBRATION_MIN_CM) -> list[Peak]:
    """Peaks above ``min_wavenumber_cm`` whose prominence is at least ``prominence`` times
    the highest value above ``min_wavenumber_cm``, by decreasing height."""
    try:
        from scipy.signal import find_peaks as scipy_find_peaks
    except ImportError:
        raise InputError("peak finding needs scipy: pip install scipy") from None
    y = spectrum.intensity
    above = spectrum.wavenumber_cm >= min_wavenumber_cm
    index, props = scipy_find_peaks(y, prominence=prominence * float(np.max(y[above])))
    peaks = [Peak(float(spectrum.wavenumber_cm[i]), float(y[i]), float(p))
             for i, p in zip(index, props["prominences"])
             if spectrum.wavenumber_cm[i] >= min_wavenumber_cm]
    return sorted(peaks, key=lambda p: -p.height)


def similarity(spectrum: Spectrum, reference: Spectrum,
               min_wavenumber_cm: float = VIBRATION_MIN_CM,
               max_wavenumber_cm: float | None = None) -> dict[str, float]:
    """Overlap (cosine: ∫ab / √(∫a² ∫b²)) and Pearson correlation of two spectra, on the
    reference's grid (the other one interpolated) between the given wavenumbers, cm-1."""
    x = reference.wavenumber_cm
    upper = x[-1] if max_wavenumber_cm is None else max_wavenumber_cm
    keep = (x >= min_wavenumber_cm) & (x <= min(upper, spectrum.wavenumber_cm[-1]))
    if keep.sum() < 3:
        raise InputError("the spectra share fewer than 3 grid points in the compared range")
    a = np.interp(x[keep], spectrum.wavenumber_cm, spectrum.intensity)
    b = reference.intensity[keep]
    overlap = float(np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b)))
    return {"overlap": overlap, "pearson": float(np.corrcoef(a, b)[0, 1])}


def match_peaks(peaks: Sequence[Peak], reference_peaks: Sequence[Peak],
                major_fraction: float = MAJOR_PEAK_FRACTION) -> list[dict[str, float]]:
    """For each major reference peak (height >= ``major_fraction`` of the highest), the
    nearest peak of ``peaks`` and the shift, cm-1 (None where there is no peak at all)."""
    if not reference_peaks:
        return []
    top = max(p.height for p in reference_peaks)
    rows = []
    for ref in sorted(reference_peaks, key=lambda p: p.wavenumber_cm):
        if ref.height < major_fraction * top:
            continue
        near = min(peaks, key=lambda p: abs(p.wavenumber_cm - ref.wavenumber_cm), default=None)
        rows.append({"reference_cm": ref.wavenumber_cm,
                     "predicted_cm": None if near is None else near.wavenumber_cm,
                     "shift_cm": None if near is None else near.wavenumber_cm - ref.wavenumber_cm})
    return rows


def write_csv(path: str | os.PathLike, spectrum: Spectrum, reference: Spectrum | None = None
              ) -> Path:
    """Write wavenumber_cm, intensity (and reference_intensity on the same grid) atomically."""
    from gicnet_runtime.atomic import atomic_target

    columns = [spectrum.wavenumber_cm, spectrum.intensity]
    header = "wavenumber_cm,intensity"
    if reference is not None:
        columns.append(np.interp(spectrum.wavenumber_cm, reference.wavenumber_cm,
                                 reference.intensity))
        header += ",reference_intensity"
    path = Path(path)
    with atomic_target(path) as tmp:
        np.savetxt(tmp, np.column_stack(columns), delimiter=",", header=header, comments="",
                   fmt="%.8g")
    return path


def band_height_ratios(spectrum: Spectrum, reference: Spectrum,
                       bands: dict[str, tuple[float, float]] = STRETCH_BANDS_CM
                       ) -> dict[str, float]:
    """Highest intensity of ``spectrum`` over that of ``reference`` inside each band window
    (cm-1) where the reference has a major peak (>= MAJOR_PEAK_FRACTION of its highest
    vibrational peak); 1 means the band has the reference's height."""
    ref_peaks = find_peaks(reference)
    top = max((p.height for p in ref_peaks), default=0.0)
    out = {}
    for name, (lo, hi) in bands.items():
        if not any(lo <= p.wavenumber_cm <= hi and p.height >= MAJOR_PEAK_FRACTION * top
                   for p in ref_peaks):
            continue
        ref_in = (reference.wavenumber_cm >= lo) & (reference.wavenumber_cm <= hi)
        got_in = (spectrum.wavenumber_cm >= lo) & (spectrum.wavenumber_cm <= hi)
        out[name] = float(spectrum.intensity[got_in].max() / reference.intensity[ref_in].max())
    return out

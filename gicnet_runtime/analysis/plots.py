"""PNG figures of the analysis commands (spectrum, evaluate, explain).

matplotlib is imported on first use, with the non-interactive Agg backend; every
figure is written atomically (a temporary file renamed over the target).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gicnet_runtime.analysis.spectrum import VIBRATION_MIN_CM, Peak, Spectrum
from gicnet_runtime.errors import InputError
from gicnet_runtime.units import EV_IN_KCAL_PER_MOL

DPI = 150
#: Peaks labelled on a spectrum plot, at most.
LABELLED_PEAKS = 8
_UNIT_LABELS = {"A": "Å", "deg": "deg"}
#: Font size of the peak labels, pt.
LABEL_FONT_PT = 7
#: Space kept between a peak and its label, and between two labels, axes fraction.
LABEL_PAD = 0.01


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise InputError("plots need matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> Path:
    from gicnet_runtime.atomic import atomic_target

    path = Path(path)
    with atomic_target(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=DPI,
                    bbox_inches="tight")
    _pyplot().close(fig)
    return path


def plot_spectrum(path: str | os.PathLike, spectrum: Spectrum, peaks: Sequence[Peak] = (),
                  reference: Spectrum | None = None, label: str = "trajectories",
                  reference_label: str = "reference", title: str = "") -> Path:
    """The spectrum (and a reference overlaid) with the strongest peaks marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    if reference is not None:
        ax.fill_between(reference.wavenumber_cm, reference.intensity, color="0.8",
                        label=reference_label)
    ax.plot(spectrum.wavenumber_cm, spectrum.intensity, color="C0", lw=1.0, label=label)
    # Scale to the vibrations: the rigid-rotation band below VIBRATION_MIN_CM runs off the top.
    ax.axvspan(0, VIBRATION_MIN_CM, color="0.95", zorder=0)
    vib = spectrum.wavenumber_cm >= VIBRATION_MIN_CM
    top = max([spectrum.intensity[vib].max()] + ([] if reference is None else [
        reference.intensity[reference.wavenumber_cm >= VIBRATION_MIN_CM].max()]))
    ax.set_xlim(0, spectrum.wavenumber_cm[-1])
    ax.set_ylim(0, 1.15 * top)
    _label_peaks(fig, ax, peaks)
    ax.set_xlabel("wavenumber / cm$^{-1}$")
    ax.set_ylabel("VACF power spectrum (area-normalised)")
    ax.set_title(title or f"resolution {spectrum.resolution_cm:.1f} cm$^{{-1}}$")
    ax.legend()
    return _save(fig, path)


def place_labels(x: Sequence[float], y: Sequence[float], widths: Sequence[float],
                 height: float, *, pad: float = LABEL_PAD, top: float = 1.0,
                 limit: int = LABELLED_PEAKS) -> dict[int, float]:
    """Where the labels of peaks go so that no two overlap, all in axes fractions (0-1).

    Greedy by decreasing peak height (the higher peak wins a collision): a label is centred
    on its peak ``x[i]`` and starts ``pad`` above the peak's top ``y[i]``; while its box
    (``widths[i]`` x ``height``) overlaps a placed label or the stem of a labelled peak, it
    moves up to ``pad`` above the obstacle.  A label that would end above ``top`` is left
    out, as are all beyond the ``limit`` highest placed ones.

    Returns {peak index: bottom of its label}, axes fraction.
    """
    boxes: list[tuple[float, float, float, float]] = []  # x0, x1, y0, y1 of labels and stems
    placed: dict[int, float] = {}
    for i in sorted(range(len(x)), key=lambda k: -y[k]):
        if len(placed) == limit:
            break
        x0, x1, bottom = x[i] - widths[i] / 2, x[i] + widths[i] / 2, y[i] + pad
        while bottom + height <= top:
            hits = [b for b in boxes if x0 < b[1] + pad and b[0] < x1 + pad
                    and bottom < b[3] + pad and b[2] < bottom + height + pad]
            if not hits:
                break
            bottom = max(b[3] for b in hits) + pad
        if bottom + height <= top:
            placed[i] = bottom
            boxes += [(x0, x1, bottom, bottom + height), (x[i], x[i], 0.0, y[i])]
    return placed


def _label_peaks(fig, ax, peaks: Sequence[Peak]) -> None:
    """Label the peaks with their wavenumbers where :func:`place_labels` finds room (axes
    limits set); a label lifted off its peak gets a thin leader line."""
    if not peaks:
        return
    texts = [f"{p.wavenumber_cm:.0f}" for p in peaks]
    renderer = fig.canvas.get_renderer()
    box = ax.get_window_extent(renderer)
    sizes = []
    for text in texts:
        artist = ax.text(0, 0, text, fontsize=LABEL_FONT_PT)
        extent = artist.get_window_extent(renderer)
        sizes.append((extent.width / box.width, extent.height / box.height))
        artist.remove()
    (x_lo, x_hi), (y_lo, y_hi) = ax.get_xlim(), ax.get_ylim()
    x = [(p.wavenumber_cm - x_lo) / (x_hi - x_lo) for p in peaks]
    y = [min((p.height - y_lo) / (y_hi - y_lo), 1.0) for p in peaks]
    placed = place_labels(x, y, [w for w, _ in sizes], max(h for _, h in sizes))
    for i, bottom in placed.items():
        lifted = bottom > y[i] + 1.5 * LABEL_PAD
        ax.annotate(texts[i], (peaks[i].wavenumber_cm, peaks[i].height),
                    xytext=(x[i], bottom), textcoords="axes fraction", ha="center",
                    va="bottom", fontsize=LABEL_FONT_PT,
                    arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "0.5"} if lifted else None)


def plot_segment_errors(path: str | os.PathLike, times_fs: np.ndarray,
                        errors: dict[str, np.ndarray]) -> Path:
    """RMSE against the reference vs time within the segment: one panel per quantity.

    errors: name -> (K,) values, names ending in their unit (``_A``, ``_deg``)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(errors), figsize=(3.2 * len(errors), 3), squeeze=False)
    for ax, (name, values) in zip(axes[0], errors.items()):
        ax.plot(times_fs, values, marker=".")
        ax.set_xlabel("time in segment / fs")
        quantity, unit = name.rsplit("_", 1)
        ax.set_title(f"{quantity.replace('_', ' ')} / {_UNIT_LABELS.get(unit, unit)}",
                     fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_energy(path: str | os.PathLike, time_fs: Sequence[np.ndarray],
                total_energy_eV: Sequence[np.ndarray], reference: bool = False) -> Path:
    """Total energy minus its initial value, kcal/mol, vs time, one line per trajectory."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for t, e in zip(time_fs, total_energy_eV):
        ax.plot(np.asarray(t) / 1000.0, (np.asarray(e) - e[0]) * EV_IN_KCAL_PER_MOL, lw=0.8)
    ax.set_xlabel("time / ps")
    ax.set_ylabel("E$_{tot}$ - E$_{tot}$(0) / kcal mol$^{-1}$")
    ax.set_title("reference engine energy of predicted frames" if not reference
                 else "reference trajectories")
    return _save(fig, path)


def plot_attributions(path: str | os.PathLike, labels: Sequence[str], values: np.ndarray,
                      title: str, top: int = 20) -> Path:
    """Horizontal bar chart of the ``top`` largest attributions by magnitude."""
    plt = _pyplot()
    order = np.argsort(-np.abs(values))[:top][::-1]
    fig, ax = plt.subplots(figsize=(6, 0.25 * len(order) + 1.2))
    ax.barh(np.arange(len(order)), values[order],
            color=["C3" if v < 0 else "C0" for v in values[order]])
    ax.set_yticks(np.arange(len(order)), [labels[i] for i in order], fontsize=7)
    ax.axvline(0.0, color="k", lw=0.5)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("integrated-gradients attribution")
    return _save(fig, path)

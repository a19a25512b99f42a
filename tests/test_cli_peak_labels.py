"""Spectrum peak labels (gicnet spectrum, evaluate): placed so that no two overlap."""

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gicnet_runtime.analysis.plots import LABEL_PAD, place_labels
from gicnet_runtime.analysis.spectrum import Peak, Spectrum

W, H = 0.04, 0.05  # label width and height, axes fraction


def _boxes(x, widths, placed):
    return {i: (x[i] - widths[i] / 2, x[i] + widths[i] / 2, b, b + H) for i, b in placed.items()}


def _overlap(a, b):
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


def test_far_peaks_keep_their_labels_on_top():
    placed = place_labels([0.2, 0.5, 0.8], [0.3, 0.6, 0.4], [W] * 3, H)
    assert placed == {1: 0.6 + LABEL_PAD, 2: 0.4 + LABEL_PAD, 0: 0.3 + LABEL_PAD}


def test_a_close_lower_peak_is_lifted_above_the_higher_label():
    placed = place_labels([0.50, 0.51], [0.6, 0.55], [W, W], H)
    assert placed[0] == 0.6 + LABEL_PAD
    assert placed[1] == placed[0] + H + LABEL_PAD


def test_a_label_is_lifted_over_a_higher_peak_it_would_cross():
    # the lower peak's label, 0.02 to the side, would cut the higher peak's line
    placed = place_labels([0.50, 0.52], [0.8, 0.2], [W, W], H)
    assert placed[1] >= 0.8 + LABEL_PAD


def test_with_no_room_the_higher_peak_keeps_its_label():
    placed = place_labels([0.50, 0.51], [0.90, 0.88], [W, W], H, top=1.0)
    assert list(placed) == [0]
    assert place_labels([0.5], [0.97], [W], H) == {}  # no room even for one


def test_at_most_limit_labels_the_highest_first():
    x = np.linspace(0.05, 0.95, 12)
    y = np.linspace(0.1, 0.6, 12)
    assert sorted(place_labels(x, y, [W] * 12, H, limit=4)) == [8, 9, 10, 11]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0.01, 0.1)),
                min_size=1, max_size=15))
def test_placed_labels_never_overlap(peaks):
    x, y, widths = (list(v) for v in zip(*peaks))
    placed = place_labels(x, y, widths, H, limit=15)
    boxes = _boxes(x, widths, placed)
    for a, b in itertools.combinations(boxes.values(), 2):
        assert not _overlap(a, b)
    for i, box in boxes.items():
        assert box[2] >= y[i] and box[3] <= 1.0


def test_plot_spectrum_labels_close_peaks_without_overlap(tmp_path, monkeypatch):
    from matplotlib.text import Text

    from gicnet_runtime.analysis import plots

    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or path)
    centres, heights = (1000.0, 1030.0, 1050.0, 3000.0), (1.0, 0.9, 0.8, 0.5)
    w = np.linspace(0, 4000, 2001)
    intensity = sum(h * np.exp(-((w - c) / 8) ** 2) for c, h in zip(centres, heights))
    spectrum = Spectrum(wavenumber_cm=w, intensity=intensity, resolution_cm=2.0,
                        max_lag_fs=1000.0, n_trajectories=1, mass_weighted=False)
    plots.plot_spectrum(tmp_path / "s.png", spectrum,
                        [Peak(c, h, h) for c, h in zip(centres, heights)])
    ax = figures[0].axes[0]
    figures[0].canvas.draw()  # annotations find their text positions when drawn
    renderer = figures[0].canvas.get_renderer()
    labels = [t for t in ax.texts if t.get_text().isdigit()]
    assert sorted(t.get_text() for t in labels) == ["1000", "1030", "1050", "3000"]
    # the text alone, without an annotation's leader line
    extents = [Text.get_window_extent(t, renderer) for t in labels]
    for a, b in itertools.combinations(extents, 2):
        assert not a.overlaps(b)
    plots._pyplot().close(figures[0])

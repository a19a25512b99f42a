"""VACF power spectra: analytic oscillators, a Morse oscillator's energy-dependent frequency,
GFN2-xTB ethanol bands, scores and the `gicnet spectrum` command."""

import numpy as np
import pytest
from click.testing import CliRunner

import cli
from gicnet_runtime.analysis.spectrum import (
    SPEED_OF_LIGHT_CM_PER_FS,
    find_peaks,
    match_peaks,
    power_spectrum,
    similarity,
)
from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.errors import InputError
from gicnet_runtime.io.formats import write_trajectory
from gicnet_runtime.units import AMU_A2_PER_FS2_IN_EV

DT_FS = 0.5
DURATION_FS = 600.0
#: Morse parameters (H2-like well, heavier atoms so that nu0 ~ 2200 cm-1): well depth eV,
#: range 1/Å, equilibrium Å, atom mass amu.
MORSE_DE_EV, MORSE_A_PER_A, MORSE_RE_A, ATOM_MASS = 4.75, 1.94, 0.74, 4.0


def _trajectory(time_fs, velocities, masses, positions=None):
    velocities = np.asarray(velocities)
    positions = np.zeros_like(velocities) if positions is None else positions
    return Trajectory(time_fs=time_fs, positions=positions, velocities=velocities,
                      atomic_numbers=np.ones(velocities.shape[1], dtype=int), masses=masses)


def _oscillators(wavenumbers_cm, amplitudes, masses, duration_fs=DURATION_FS, phase=0.3):
    """Atoms each oscillating along x at its own wavenumber: v = A w cos(w t + phase)."""
    t = np.arange(0.0, duration_fs + DT_FS / 2, DT_FS)
    omega = 2 * np.pi * np.asarray(wavenumbers_cm) * SPEED_OF_LIGHT_CM_PER_FS  # rad/fs
    vel = np.zeros((t.size, len(omega), 3))
    vel[:, :, 0] = np.asarray(amplitudes) * omega * np.cos(omega * t[:, None] + phase)
    return _trajectory(t, vel, np.asarray(masses, dtype=float))


def test_harmonic_peak_within_one_bin_and_resolution():
    spectrum = power_spectrum([_oscillators([1537.0], [0.05], [12.0])])
    assert spectrum.resolution_cm == pytest.approx(1 / (1201 * DT_FS * SPEED_OF_LIGHT_CM_PER_FS))
    assert 55.0 < spectrum.resolution_cm < 56.0
    peak = find_peaks(spectrum)[0]
    assert abs(peak.wavenumber_cm - 1537.0) <= spectrum.resolution_cm
    assert np.trapezoid(spectrum.intensity, spectrum.wavenumber_cm) == pytest.approx(1.0)


def test_mass_weighting_gives_band_areas_in_the_ratio_of_kinetic_energies():
    # Kinetic energies m (A w)^2 / 4 in the ratio 1 : 2; unweighted, the ratio is (A w)^2.
    wavenumbers, masses = np.array([1000.0, 3000.0]), np.array([16.0, 1.0])
    amplitudes = np.array([0.02, 0.02 * np.sqrt(2 * 16.0) / 3.0])
    traj = _oscillators(wavenumbers, amplitudes, masses, duration_fs=2000.0)
    for weighted in (True, False):
        s = power_spectrum([traj], mass_weighted=weighted)
        areas = [np.trapezoid(s.intensity * (np.abs(s.wavenumber_cm - w) < 300),
                              s.wavenumber_cm) for w in wavenumbers]
        w2 = (amplitudes * wavenumbers) ** 2
        expected = 2.0 if weighted else w2[1] / w2[0]
        assert areas[1] / areas[0] == pytest.approx(expected, rel=0.03)


def _morse_trajectory(energy_eV: float) -> Trajectory:
    """Two atoms on a Morse bond along x, velocity Verlet at DT_FS / 20, from r = re with
    kinetic energy ``energy_eV``."""
    mu = ATOM_MASS / 2
    de = MORSE_DE_EV / AMU_A2_PER_FS2_IN_EV  # amu Å^2/fs^2

    def force(r):
        e = np.exp(-MORSE_A_PER_A * (r - MORSE_RE_A))
        return -2 * de * MORSE_A_PER_A * (1 - e) * e

    sub = 20
    h = DT_FS / sub
    r, v = MORSE_RE_A, np.sqrt(2 * energy_eV / AMU_A2_PER_FS2_IN_EV / mu)
    n = int(round(DURATION_FS / DT_FS)) + 1
    rel_v = np.empty(n)
    for k in range(n):
        rel_v[k] = v
        for _ in range(sub):
            v += 0.5 * h * force(r) / mu
            r += h * v
            v += 0.5 * h * force(r) / mu
    vel = np.zeros((n, 2, 3))
    vel[:, 0, 0], vel[:, 1, 0] = -rel_v / 2, rel_v / 2
    return _trajectory(np.arange(n) * DT_FS, vel, np.array([ATOM_MASS, ATOM_MASS]))


@pytest.mark.parametrize("fraction", [0.1, 0.5])
def test_morse_peak_follows_the_energy_dependent_frequency(fraction):
    # Classical Morse frequency at energy E: nu0 sqrt(1 - E / De), nu0 = a sqrt(2 De / mu) / 2pi.
    mu = ATOM_MASS / 2
    omega0 = MORSE_A_PER_A * np.sqrt(2 * MORSE_DE_EV / AMU_A2_PER_FS2_IN_EV / mu)
    expected = omega0 / (2 * np.pi) / SPEED_OF_LIGHT_CM_PER_FS * np.sqrt(1 - fraction)
    spectrum = power_spectrum([_morse_trajectory(fraction * MORSE_DE_EV)])
    peak = find_peaks(spectrum)[0]
    assert abs(peak.wavenumber_cm - expected) <= spectrum.resolution_cm
    # ... and not at the harmonic frequency when anharmonicity shifts it by several bins.
    if fraction == 0.5:
        assert abs(peak.wavenumber_cm - expected / np.sqrt(1 - fraction)) > \
            3 * spectrum.resolution_cm


def test_shifted_oscillator_scores_and_peak_matching():
    base = power_spectrum([_oscillators([1000.0, 3000.0], [0.01, 0.0115], [12.0, 1.0])])
    shifted = power_spectrum([_oscillators([1000.0, 3100.0], [0.01, 0.0115], [12.0, 1.0])])
    same = similarity(base, base)
    assert same["overlap"] == pytest.approx(1.0) and same["pearson"] == pytest.approx(1.0)
    moved = similarity(shifted, base)
    assert moved["overlap"] < 0.8 and moved["pearson"] < 0.8
    rows = match_peaks(find_peaks(shifted), find_peaks(base))
    assert [round(r["reference_cm"] / 100) for r in rows] == [10, 30]
    assert abs(rows[0]["shift_cm"]) <= base.resolution_cm / 2
    assert abs(rows[1]["shift_cm"] - 100.0) <= base.resolution_cm / 2


def test_bad_inputs_raise_input_errors():
    traj = _oscillators([1000.0], [0.01], [1.0])
    with pytest.raises(InputError, match="resolve only up to"):
        power_spectrum([traj], max_wavenumber_cm=40000.0)
    uneven = _trajectory(traj.time_fs ** 1.01, traj.velocities, traj.masses)
    with pytest.raises(InputError, match="unevenly"):
        power_spectrum([uneven])
    with pytest.raises(InputError, match="window"):
        power_spectrum([traj], window="triangle")
    with pytest.raises(InputError, match="max_lag_fs"):
        power_spectrum([traj], max_lag_fs=5000.0)


def _hydrogens(traj: Trajectory):
    """(hydroxyl H, the C-bound H's), 0-based, from the first frame's geometry."""
    pos = traj.positions[0]
    heavy = np.flatnonzero(traj.atomic_numbers > 1)
    hydrogens = np.flatnonzero(traj.atomic_numbers == 1)
    nearest = heavy[np.argmin(np.linalg.norm(pos[hydrogens, None] - pos[heavy][None], axis=-1),
                              axis=1)]
    on_oxygen = traj.atomic_numbers[nearest] == 8
    return hydrogens[on_oxygen], hydrogens[~on_oxygen]


def test_gfn2_ethanol_shows_oh_and_ch_stretch_bands(short_md):
    # GFN2-xTB puts ethanol's O-H stretch near 3500-3600 cm-1 and the C-H stretches near
    # 2850-3050 cm-1 (600 fs of lag: ~56 cm-1 resolution, enough to locate the bands).
    oh, ch = _hydrogens(short_md[0])
    assert len(oh) == 1 and len(ch) == 5
    def top_peak(atoms, above_cm):
        s = power_spectrum(short_md, atoms=atoms)
        return max((p for p in find_peaks(s) if p.wavenumber_cm > above_cm),
                   key=lambda p: p.height).wavenumber_cm
    assert 3450.0 <= top_peak(oh, 2500.0) <= 3700.0
    assert 2850.0 <= top_peak(ch, 2500.0) <= 3150.0
    whole = power_spectrum(short_md)
    peaks = [p.wavenumber_cm for p in find_peaks(whole)]
    assert any(3450.0 <= w <= 3700.0 for w in peaks)
    assert any(2850.0 <= w <= 3150.0 for w in peaks)
    # Nothing vibrates between the C-H and O-H bands, nor above the O-H band.
    gap = (whole.wavenumber_cm > 3200.0) & (whole.wavenumber_cm < 3380.0)
    high = whole.wavenumber_cm > 3850.0
    band = np.max(whole.intensity[whole.wavenumber_cm > 2850.0])
    assert np.max(whole.intensity[gap]) < 0.2 * band
    assert np.max(np.abs(whole.intensity[high])) < 0.1 * band


def test_cli_spectrum_writes_plot_csv_and_scores(tmp_path):
    paths = []
    for k, w in enumerate([1500.0, 1510.0]):
        path = tmp_path / f"osc{k}.h5"
        write_trajectory(_oscillators([w], [0.03], [12.0]), path)
        paths.append(path)
    out, csv = tmp_path / "spec.png", tmp_path / "spec.csv"
    result = CliRunner().invoke(cli.main, ["spectrum", str(paths[0]), "--out", str(out),
                                           "--csv", str(csv), "--reference", str(paths[1])])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 1000
    table = np.loadtxt(csv, delimiter=",", skiprows=1)
    assert table.shape[1] == 3 and table[-1, 0] <= 4000.0
    assert abs(table[np.argmax(table[:, 1]), 0] - 1500.0) < 56.0
    assert "similarity: overlap 0.9" in result.output
    bad = CliRunner().invoke(cli.main, ["spectrum", str(paths[0]), "--out", str(out),
                                        "--window", "nope"])
    assert bad.exit_code == 1 and "unknown window" in bad.output


def _two_band_spectrum(oh_height: float):
    """C-H band at 3000 cm-1 (height 1) and O-H band at 3600 cm-1 (height oh_height)."""
    import numpy as np

    from gicnet_runtime.analysis import spectrum as sp

    w = np.linspace(0.0, 4000.0, 4001)
    intensity = (np.exp(-0.5 * ((w - 3000.0) / 20.0) ** 2)
                 + oh_height * np.exp(-0.5 * ((w - 3600.0) / 20.0) ** 2))
    return sp.Spectrum(w, intensity, 1.0, 1000.0, 1, True)


def test_band_height_ratios_compare_stretch_band_maxima():
    from gicnet_runtime.analysis import spectrum as sp

    reference = _two_band_spectrum(0.8)
    damped = _two_band_spectrum(0.4)
    ratios = sp.band_height_ratios(damped, reference)
    assert set(ratios) == {"O-H stretch", "C-H stretch"}
    # A band the reference lacks is not scored.
    no_oh = sp.band_height_ratios(damped, _two_band_spectrum(0.0))
    assert set(no_oh) == {"C-H stretch"}
    assert abs(ratios["O-H stretch"] - 0.5) < 1e-9
    assert abs(ratios["C-H stretch"] - 1.0) < 1e-9

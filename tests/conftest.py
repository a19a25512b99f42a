"""Shared fixtures: short real MD trajectories (GFN2-xTB ethanol), made once per session."""

import pytest

from gicnet_runtime.reference.simulate import SimulationSettings, run_trajectories

#: Short NVE runs for training tests: 4 x 600 fs at 0.5 fs after 200 fs of equilibration.
SHORT_MD = SimulationSettings(molecule="CH3CH2OH", engine="gfn2", temperature_K=300.0,
                              dt_fs=0.5, duration_fs=600.0, equilibration_fs=200.0,
                              zero_angular_momentum=False)


@pytest.fixture(scope="session")
def short_md():
    """Four independent ethanol trajectories (list of Trajectory), seeds 11..14."""
    return run_trajectories(SHORT_MD, seeds=[11, 12, 13, 14], workers=2, progress=False)

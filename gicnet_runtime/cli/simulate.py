"""`gicnet simulate`: reference MD trajectories."""

from __future__ import annotations

import dataclasses

import click

from gicnet_runtime.cli.estimate import MAX_ENGINE_CALLS, check_simulate, limit_option
from gicnet_runtime.cli.options import ray_option
from gicnet_runtime.cli.types import COUNT, DURATION_FS, INDEX, POSITIVE, STEP_FS, THREADS, TIME_FS
from gicnet_runtime.reference.simulate import SimulationSettings

#: The option defaults of the per-trajectory settings are SimulationSettings' own.
_DEFAULT = {f.name: f.default for f in dataclasses.fields(SimulationSettings)}


@click.command()
@click.argument("molecule")
@click.option("--engine", type=click.Choice(["gfn2", "gfn1", "ani1x"]), default=_DEFAULT["engine"],
              show_default=True, help="Reference engine (GFN2-/GFN1-xTB via tblite, ANI-1x).")
@click.option("--temperature-K", "temperature_K", type=POSITIVE,
              default=_DEFAULT["temperature_K"],
              show_default=True, help="Thermostat temperature, K.")
@click.option("--dt-fs", type=STEP_FS, default=_DEFAULT["dt_fs"], show_default=True,
              help="Time step, fs.")
@click.option("--duration-fs", type=DURATION_FS, default=_DEFAULT["duration_fs"],
              show_default=True,
              help="NVE length per trajectory, fs.")
@click.option("--equilibration-fs", type=TIME_FS, default=_DEFAULT["equilibration_fs"],
              show_default=True, help="Langevin equilibration before NVE, fs.")
@click.option("--friction-per-fs", type=POSITIVE, default=_DEFAULT["friction_per_fs"],
              show_default=True, help="Langevin friction, 1/fs.")
@click.option("--save-every", type=COUNT, default=_DEFAULT["save_every"], show_default=True,
              help="Save every this many NVE steps.")
@click.option("--n-trajectories", type=COUNT, default=4, show_default=True,
              help="Independent trajectories, seeds SEED, SEED+1, ...")
@click.option("--seed", type=INDEX, default=0, show_default=True, help="First seed.")
@click.option("--workers", type=THREADS, default=2, show_default=True, help="Worker processes.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="trajectories",
              show_default=True, help="Output folder (existing files are kept).")
@click.option("--format", "fmt", type=click.Choice(["h5md", "extxyz"]), default="h5md",
              show_default=True, help="Output format.")
@click.option("--zero-rotation/--keep-rotation", "zero_angular_momentum",
              default=_DEFAULT["zero_angular_momentum"], show_default=True,
              help="Zero the total angular momentum before NVE (or keep it).")
@limit_option("--max-engine-calls", MAX_ENGINE_CALLS, "MD steps (trajectories x steps)")
@ray_option
def simulate(molecule, engine, temperature_K, dt_fs, duration_fs, equilibration_fs,
             friction_per_fs, save_every, n_trajectories, seed, workers, out_dir, fmt,
             zero_angular_momentum, max_engine_calls, ray_address):
    """Reference MD of MOLECULE (an ase.build.molecule name or a structure file):
    Langevin equilibration, then velocity-Verlet NVE, one file per seed.

    With --ray, every seed is a Ray task on one CPU of the cluster (--workers is then
    the cluster's business), written here as soon as it finishes; a task whose worker
    dies is run again."""
    from pathlib import Path

    from gicnet_runtime.errors import InputError, one_line
    from gicnet_runtime.io.formats import read_trajectory
    from gicnet_runtime.io.plan import OutputPlan
    from gicnet_runtime.reference.simulate import simulate_to_files, validate

    settings = SimulationSettings(
        molecule=molecule, engine=engine, temperature_K=temperature_K, dt_fs=dt_fs,
        duration_fs=duration_fs, equilibration_fs=equilibration_fs,
        friction_per_fs=friction_per_fs, save_every=save_every,
        zero_angular_momentum=zero_angular_momentum)
    check_simulate(settings, n_trajectories, max_engine_calls)
    seeds = list(range(seed, seed + n_trajectories))
    validate(settings)
    # Trajectories stream into the folder as each one finishes (an interrupted run keeps
    # them and the next run skips them), so the plan locks and checks it, nothing more.
    try:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"cannot create output folder {out_dir}: {one_line(err)}") from None
    with OutputPlan(inputs=[molecule], command="simulate") as plan:
        plan.add_folder(out_dir)
        if ray_address is None:
            paths = simulate_to_files(settings, seeds, out_dir, fmt=fmt, workers=workers)
        else:
            from gicnet_runtime.cluster.simulate import simulate_on_ray
            from gicnet_runtime.progress import progress

            with progress(n_trajectories, "trajectories", "trajectory") as bar:
                paths = simulate_on_ray(settings, seeds, out_dir, fmt=fmt,
                                        address=ray_address, progress=bar.update)
    for path in paths:
        info = read_trajectory(path).info
        click.echo(f"{path}  NVE {info['nve_temperature_K']:.1f} K  "
                   f"equilibration {info['equilibration_temperature_K'] or float('nan'):.1f} K")

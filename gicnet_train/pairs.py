"""Training pairs: initial conditions along trajectories and targets within (0, tc].

Every ``stride``-th frame of a trajectory is an initial condition; its targets are
the following K = tc / dt frames.  Targets are internal coordinates in the initial
condition's own body frame (the frame the model predicts in), dihedrals unwrapped
relative to their initial values.  Adjacent frames 0.5 fs apart are nearly the same
initial condition, so the default stride of 2 (1 fs) halves memory and time at
little loss of information.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from gicnet_runtime.core.icdef import ICDefinition
from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.errors import InputError
from gicnet_train import geometry as geo

#: Relative tolerance on the uniformity of frame spacing.
SPACING_RTOL = 1e-6
#: Initial conditions transformed per chunk (bounds float64 scratch memory).
CHUNK = 4096


@dataclasses.dataclass(frozen=True)
class Pairs:
    """Initial conditions and their targets (float32 tensors).

    Attributes:
        positions0, velocities0: (M, N, 3) Å, Å/fs, lab frame.
        q0, q0_dot: (M, N, 3) internal coordinates and rates at t = 0.
        times: (K,) fs, the target times shared by all pairs.
        q, q_dot: (M, K, N, 3) targets at ``times``.
        positions: (M, K, N, 3) Å, lab-frame target positions (for Cartesian errors).
        trajectory: (M,) index of the source trajectory.
    """

    positions0: torch.Tensor
    velocities0: torch.Tensor
    q0: torch.Tensor
    q0_dot: torch.Tensor
    times: torch.Tensor
    q: torch.Tensor
    q_dot: torch.Tensor
    positions: torch.Tensor
    trajectory: torch.Tensor

    def __len__(self) -> int:
        return self.q0.shape[0]

    def to(self, device: torch.device) -> Pairs:
        return Pairs(**{f.name: getattr(self, f.name).to(device)
                        for f in dataclasses.fields(self)})

    def subset(self, index: torch.Tensor) -> Pairs:
        return Pairs(**{f.name: (getattr(self, f.name) if f.name == "times"
                                 else getattr(self, f.name)[index])
                        for f in dataclasses.fields(self)})


def frame_spacing_fs(traj: Trajectory) -> float:
    """The uniform frame spacing of ``traj``, fs; InputError if not uniform."""
    if traj.n_frames < 2:
        raise InputError("trajectory has fewer than 2 frames")
    dt = np.diff(traj.time_fs)
    if not np.allclose(dt, dt[0], rtol=SPACING_RTOL, atol=0):
        raise InputError("trajectory frames are not evenly spaced in time")
    return float(dt[0])


def build_pairs(trajectories: list[Trajectory], icdef: ICDefinition, tc_fs: float,
                stride: int = 2) -> Pairs:
    """Pairs from every trajectory; all must share atoms and frame spacing."""
    if not trajectories:
        raise InputError("no trajectories given")
    spacing = frame_spacing_fs(trajectories[0])
    k = round(tc_fs / spacing)
    if k < 1 or not np.isclose(k * spacing, tc_fs, rtol=1e-6):
        raise InputError(f"tc {tc_fs} fs is not a multiple of the frame spacing {spacing} fs")
    parts = []
    for index, traj in enumerate(trajectories):
        _check_compatible(traj, trajectories[0], spacing)
        if traj.n_frames <= k:
            raise InputError(f"trajectory {index} is shorter than tc ({traj.n_frames} frames)")
        parts.append(_pairs_of(traj, icdef, k, stride, index))
    cat = {name: torch.cat([p[name] for p in parts]) for name in parts[0]}
    times = torch.arange(1, k + 1, dtype=torch.float32) * spacing
    return Pairs(times=times, **cat)


def _check_compatible(traj: Trajectory, first: Trajectory, spacing: float) -> None:
    if not np.array_equal(traj.atomic_numbers, first.atomic_numbers):
        raise InputError("trajectories disagree in atoms or atom order")
    if not np.isclose(frame_spacing_fs(traj), spacing, rtol=1e-6):
        raise InputError("trajectories disagree in frame spacing")


def _pairs_of(traj: Trajectory, icdef: ICDefinition, k: int, stride: int,
              index: int) -> dict[str, torch.Tensor]:
    pos = torch.from_numpy(traj.positions)
    vel = torch.from_numpy(traj.velocities)
    masses = torch.from_numpy(traj.masses)
    starts = torch.arange(0, traj.n_frames - k, stride)
    window = starts.unsqueeze(1) + torch.arange(k + 1)
    out: dict[str, list[torch.Tensor]] = {n: [] for n in
                                          ("positions0", "velocities0", "q0", "q0_dot", "q",
                                           "q_dot", "positions")}
    for chunk in window.split(CHUNK):
        p, v = pos[chunk], vel[chunk]  # (C, K+1, N, 3)
        _, _, frame = geo.to_internal(p[:, 0], v[:, 0], masses, icdef)
        q, q_dot, _ = geo.to_internal(p, v, masses, icdef, rotation=frame.rotation.unsqueeze(1))
        q[..., geo.DIHEDRAL] = geo.unwrap_dihedral(q[..., geo.DIHEDRAL],
                                                   q[:, :1, :, geo.DIHEDRAL])
        for name, value in (("positions0", p[:, 0]), ("velocities0", v[:, 0]), ("q0", q[:, 0]),
                            ("q0_dot", q_dot[:, 0]), ("q", q[:, 1:]), ("q_dot", q_dot[:, 1:]),
                            ("positions", p[:, 1:])):
            out[name].append(value.float())
    result = {name: torch.cat(values) for name, values in out.items()}
    result["trajectory"] = torch.full((len(starts),), index, dtype=torch.int64)
    return result


def split_by_trajectory(pairs: Pairs, train_ids: list[int]) -> tuple[Pairs, Pairs]:
    """Pairs from the trajectories ``train_ids`` and from all others (no leakage)."""
    is_train = torch.zeros(int(pairs.trajectory.max()) + 1, dtype=torch.bool)
    is_train[torch.as_tensor(train_ids, dtype=torch.int64)] = True
    mask = is_train[pairs.trajectory]
    return (pairs.subset(torch.nonzero(mask).squeeze(1)),
            pairs.subset(torch.nonzero(~mask).squeeze(1)))


def successors(pairs: Pairs, stride: int) -> torch.Tensor:
    """(M,) for each pair the index of the pair that starts tc later on the same trajectory
    (its targets continue this pair's), or -1 where the trajectory ends first.

    Pairs of one trajectory are consecutive and in start order, ``stride`` frames apart (as
    :func:`build_pairs` and :func:`split_by_trajectory` keep them), so the successor lies
    K / stride pairs further on, K = len(pairs.times)."""
    k = len(pairs.times)
    if k % stride:
        raise InputError(f"tc spans {k} frames, not a multiple of the stride {stride}: the "
                         "pair starting at tc does not exist")
    index = torch.arange(len(pairs), device=pairs.trajectory.device)
    later = index + k // stride
    same = torch.zeros_like(index, dtype=torch.bool)
    inside = later < len(pairs)
    same[inside] = pairs.trajectory[later[inside]] == pairs.trajectory[inside]
    return torch.where(same, later, torch.full_like(index, -1))

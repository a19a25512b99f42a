"""What drives a motion over many frames: integrated-gradients attributions aggregated.

One frame's attribution (:func:`gicnet_runtime.analysis.explain.integrated_gradients`) is
an anecdote; a finding needs many frames (e.g. every frame some fs before a transition)
and a measure of how robust it is.  :func:`summarize` takes the attributions of F frames
of the same explained coordinate and time and gives, per input coordinate and per kind of
input (bonds, angles, dihedrals and their rates):

- the mean attribution over frames and its spread over frames (standard deviation);
- the spread over ensemble members (standard deviation over members, averaged over
  frames): attributions that the members disagree on are the model's guess, not its
  knowledge;
- the share of the attribution's total size, mean over frames of Σ|A| of the kind over
  Σ|A| of all inputs;
- per frame, the completeness check Σ A - (F(z) - F(z')), absolute and relative to
  |F(z) - F(z')|.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from gicnet_runtime.analysis.explain import (
    INPUT_KINDS,
    Attribution,
    input_kinds,
    relative_completeness,
)
from gicnet_runtime.errors import InputError


@dataclasses.dataclass(frozen=True)
class AttributionSummary:
    """Attributions of F frames aggregated (see the module docstring).

    Attributes:
        labels, units: (6N,) the inputs (as in :class:`Attribution`).
        kinds: (6N,) each input's kind, one of ``INPUT_KINDS``.
        values: (F, 6N) the frames' attributions (ensemble mean), coordinate's unit.
        member_values: (F, M, 6N) each member's, or None when not known.
        changes: (F,) F(z) - F(z') per frame; completeness: (F,) Σ A - (F(z) - F(z')).
        coordinate_label, unit, time_fs: what was explained, in which unit, when.
    """

    labels: tuple[str, ...]
    units: tuple[str, ...]
    kinds: np.ndarray
    values: np.ndarray
    member_values: np.ndarray | None
    changes: np.ndarray
    completeness: np.ndarray
    coordinate_label: str
    unit: str
    time_fs: float

    @property
    def mean(self) -> np.ndarray:
        """(6N,) mean attribution over frames."""
        return self.values.mean(axis=0)

    @property
    def frame_spread(self) -> np.ndarray:
        """(6N,) standard deviation over frames (0 for one frame)."""
        return self.values.std(axis=0)

    @property
    def member_spread(self) -> np.ndarray | None:
        """(6N,) standard deviation over members, averaged over frames."""
        return None if self.member_values is None else self.member_values.std(axis=1).mean(0)

    @property
    def relative_completeness(self) -> np.ndarray:
        """(F,) |Σ A - (F(z) - F(z'))| / |F(z) - F(z')|."""
        return relative_completeness(self.completeness, self.changes)

    def by_kind(self) -> list[dict]:
        """Per kind of input: the summed attribution per frame (mean and spread over
        frames, spread over members) and its share of Σ|A| (mean over frames)."""
        size = np.abs(self.values).sum(axis=1)
        rows = []
        for kind in INPUT_KINDS:
            mask = self.kinds == kind
            total = self.values[:, mask].sum(axis=1)                        # (F,)
            share = np.abs(self.values[:, mask]).sum(axis=1) / np.maximum(size, 1e-300)
            member = (None if self.member_values is None
                      else float(self.member_values[:, :, mask].sum(axis=2).std(axis=1)
                                 .mean()))
            rows.append({"kind": kind, "mean": float(total.mean()),
                         "frame_spread": float(total.std()), "member_spread": member,
                         "share": float(share.mean())})
        return rows

    def table(self, top: int | None = None) -> list[dict]:
        """Per input, by decreasing |mean attribution|: label, unit of the input, mean,
        spread over frames and over members, in the coordinate's unit."""
        order = np.argsort(-np.abs(self.mean), kind="stable")[:top]
        member = self.member_spread
        return [{"input": self.labels[i], "input_unit": self.units[i], "kind": self.kinds[i],
                 "mean": float(self.mean[i]), "frame_spread": float(self.frame_spread[i]),
                 "member_spread": None if member is None else float(member[i])}
                for i in order]

    def to_json(self, top: int | None = None) -> dict:
        """Everything, JSON-ready (the per-frame attributions included)."""
        return {"coordinate": self.coordinate_label, "unit": self.unit,
                "time_fs": self.time_fs, "frames": int(self.values.shape[0]),
                "by_kind": self.by_kind(), "inputs": self.table(top),
                "completeness": {"absolute": self.completeness.tolist(),
                                 "relative": self.relative_completeness.tolist(),
                                 "max_relative": float(self.relative_completeness.max())},
                "changes": self.changes.tolist(), "labels": list(self.labels),
                "values": self.values.tolist()}


def summarize(attributions: Sequence[Attribution]) -> AttributionSummary:
    """Aggregate the attributions of several frames (same model, coordinate and time)."""
    if not attributions:
        raise InputError("no attributions to summarize")
    first = attributions[0]
    for a in attributions[1:]:
        if (a.labels, a.coordinate, a.time_fs) != (first.labels, first.coordinate,
                                                   first.time_fs):
            raise InputError("attributions of different models, coordinates or times "
                             "cannot be summarized together")
    members = (None if any(a.member_values is None for a in attributions)
               else np.stack([a.member_values for a in attributions]))
    return AttributionSummary(
        labels=first.labels, units=first.units, kinds=input_kinds(len(first.labels) // 6),
        values=np.stack([a.values for a in attributions]), member_values=members,
        changes=np.array([a.output - a.baseline_output for a in attributions]),
        completeness=np.array([a.completeness_error for a in attributions]),
        coordinate_label=first.coordinate.label(), unit=first.coordinate.unit,
        time_fs=first.time_fs)


def format_summary(summary: AttributionSummary, top: int | None = None) -> list[str]:
    """Text lines: the completeness check, the kinds, the largest inputs."""
    unit, frames = summary.unit, summary.values.shape[0]
    lines = [f"{summary.coordinate_label} at t = {summary.time_fs:g} fs over {frames} frames: "
             f"mean change {summary.changes.mean():.4g} {unit}; completeness, worst frame: "
             f"{summary.relative_completeness.max():.2%} of its change",
             f"{'kind':<16}{'sum':>12}{'±frames':>12}{'±members':>12}{'share':>8}"]
    for row in summary.by_kind():
        member = "" if row["member_spread"] is None else f"{row['member_spread']:.4g}"
        lines.append(f"{row['kind']:<16}{row['mean']:>12.4g}{row['frame_spread']:>12.4g}"
                     f"{member:>12}{row['share']:>8.1%}")
    lines.append(f"{'input':<32}{'mean':>12}{'±frames':>12}{'±members':>12}   ({unit})")
    for row in summary.table(top):
        member = "" if row["member_spread"] is None else f"{row['member_spread']:.4g}"
        lines.append(f"{row['input']:<32}{row['mean']:>12.4g}{row['frame_spread']:>12.4g}"
                     f"{member:>12}")
    return lines

"""One output plan per command: every path a command will write, checked before any work.

A command names its inputs and its outputs up front (:class:`OutputPlan`); the plan
refuses, before anything is computed, an output that cannot be written (missing or
read-only folder, a folder where a file should go, an unknown suffix for its kind), that
is one of the command's own inputs, or that another live gicnet run is writing (a lock
file ``.NAME.lock`` beside it, holding the writer's pid; a lock whose process is gone is
taken over).  Outputs are written to staged names beside their targets
(:meth:`OutputPlan.staged`) and renamed onto them together by :meth:`OutputPlan.commit`
once every one is complete; on any failure the staged files are removed, so nothing is
left behind.  A successful commit also removes temporaries that killed earlier runs left
for the same outputs.

Use::

    with OutputPlan(inputs=[init, *models]) as plan:
        out = plan.add(path, "trajectory")           # checked now
        write_trajectory(traj, plan.staged(out))     # the work
        plan.commit()                                # all outputs appear at once
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterable
from pathlib import Path

from gicnet_runtime.atomic import (
    check_folder_writable,
    check_output_file,
    remove_stale_temporaries,
)
from gicnet_runtime.errors import InputError, one_line

#: Suffixes accepted per kind of output (trajectories: the format registry's).
PLOT_SUFFIXES = (".png", ".pdf", ".svg")
TABLE_SUFFIXES = (".csv", ".txt")
JSON_SUFFIXES = (".json",)
MODEL_SUFFIXES = (".onnx",)
#: Marks a staged output's name (``.NAME.STAGE_TAG-PID-HEX.SUFFIX``).
STAGE_TAG = "gicnet-stage"
LOCK_SUFFIX = ".lock"


class OutputPlan:
    """The outputs of one command (see the module docstring).

    Args:
        inputs: every file the command reads (none may be an output).
        command: the command's name, for the lock files and messages.
    """

    def __init__(self, inputs: Iterable[str | os.PathLike] = (), command: str = "gicnet") -> None:
        self.command = command
        self.inputs = {_key(p) for p in inputs if p is not None and Path(p).exists()}
        self.outputs: list[Path] = []
        self.folders: list[Path] = []
        self._staged: dict[Path, Path] = {}
        self._staged_folders: dict[Path, Path] = {}
        self._locks: list[Path] = []
        self._committed = False

    def add(self, path: str | os.PathLike, kind: str = "trajectory",
            fmt: str | None = None) -> Path:
        """Check output ``path`` of ``kind`` ("trajectory", "plot", "table", "json",
        "model" or "file") now, lock it, and return it resolved."""
        path = Path(path).absolute()
        if _key(path) in self.inputs:
            raise InputError(f"output {path} is also an input of this command; choose "
                             "another output name")
        _check_kind(path, kind, fmt)
        check_output_file(path)
        self._lock(path)
        self.outputs.append(path)
        return path

    def add_folder(self, path: str | os.PathLike) -> Path:
        """Check output folder ``path`` (created by :meth:`commit` if missing; files in it
        that the command does not write are kept) now, lock it, and return it resolved."""
        path = Path(path).absolute()
        if path.exists() and not path.is_dir():
            raise InputError(f"output folder {path} is a file")
        if not path.parent.is_dir():
            raise InputError(f"the folder that would hold {path.name} does not exist: "
                             f"{path.parent}")
        if _key(path) in self.inputs:
            raise InputError(f"output folder {path} is also an input of this command")
        check_folder_writable(path if path.is_dir() else path.parent)
        self._lock(path)
        self.folders.append(path)
        return path

    def staged_folder(self, path: str | os.PathLike) -> Path:
        """Where to write the files of output folder ``path`` (added before): a hidden
        sibling folder whose files :meth:`commit` moves into ``path``."""
        path = Path(path).absolute()
        if path not in self.folders:
            raise ValueError(f"{path} is not an output folder of this plan")
        if path not in self._staged_folders:
            staged = path.with_name(f".{path.name}.{STAGE_TAG}-{os.getpid()}-"
                                    f"{uuid.uuid4().hex[:8]}")
            staged.mkdir()
            self._staged_folders[path] = staged
        return self._staged_folders[path]

    def staged(self, path: str | os.PathLike) -> Path:
        """Where to write output ``path`` (added before): a hidden name beside it with the
        same suffix, renamed onto it by :meth:`commit`."""
        path = Path(path).absolute()
        if path not in self.outputs:
            raise ValueError(f"{path} is not an output of this plan")
        if path not in self._staged:
            self._staged[path] = path.with_name(
                f".{path.stem}.{STAGE_TAG}-{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}")
        return self._staged[path]

    def commit(self) -> list[Path]:
        """Rename every staged output onto its target (outputs never staged are left
        alone), remove stale temporaries of the outputs; returns the outputs written."""
        missing = [p for p, s in self._staged.items() if not s.is_file()]
        if missing:
            raise InputError(f"output {missing[0]} was not written")
        for path, staged in self._staged.items():
            os.replace(staged, path)
        for path, staged in self._staged_folders.items():
            path.mkdir(exist_ok=True)
            for item in sorted(staged.rglob("*")):
                target = path / item.relative_to(staged)
                if item.is_dir():
                    target.mkdir(exist_ok=True)
                else:
                    os.replace(item, target)
            shutil.rmtree(staged, ignore_errors=True)
        self._committed = True
        for path in self.outputs:
            remove_stale_temporaries(path)
            for stale in path.parent.glob(f".{path.stem}.{STAGE_TAG}-*{path.suffix}"):
                stale.unlink(missing_ok=True)
        return list(self._staged) + list(self._staged_folders)

    def __enter__(self) -> OutputPlan:
        return self

    def __exit__(self, *exc) -> None:
        if not self._committed:
            for staged in self._staged.values():
                staged.unlink(missing_ok=True)
            for staged in self._staged_folders.values():
                shutil.rmtree(staged, ignore_errors=True)
        for lock in self._locks:
            lock.unlink(missing_ok=True)

    def _lock(self, path: Path) -> None:
        lock = path.with_name(f".{path.name}{LOCK_SUFFIX}")
        text = f"{os.getpid()} {socket.gethostname()} {self.command}\n"
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = _live_holder(lock)
                if holder is not None:
                    raise InputError(f"another gicnet run ({holder}) is writing {path}; wait "
                                     f"for it, or delete {lock} if that run is gone") from None
                lock.unlink(missing_ok=True)  # its process is gone: take it over
                continue
            except OSError as err:
                raise InputError(f"cannot write to {path.parent}: {one_line(err)}") from None
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            self._locks.append(lock)
            return
        raise InputError(f"cannot lock {path}: {lock} keeps reappearing")


def _key(path: str | os.PathLike) -> tuple:
    """Identity of a file: (device, inode) when it exists, else its resolved path."""
    path = Path(path)
    try:
        st = path.stat()
        return (st.st_dev, st.st_ino)
    except OSError:
        return (str(path.resolve()),)


def _check_kind(path: Path, kind: str, fmt: str | None) -> None:
    if kind == "trajectory":
        from gicnet_runtime.io.formats import format_of

        format_of(path, fmt, hint="pass --format")
        return
    allowed = {"plot": PLOT_SUFFIXES, "table": TABLE_SUFFIXES, "json": JSON_SUFFIXES,
               "model": MODEL_SUFFIXES, "file": None}[kind]
    if allowed is not None and path.suffix.lower() not in allowed:
        raise InputError(f"{path.name}: a {kind} output needs one of the suffixes "
                         f"{' '.join(allowed)}")


def _live_holder(lock: Path) -> str | None:
    """Who holds ``lock`` ("pid N on HOST running CMD") if that process is alive (on
    another host: assumed alive), else None."""
    try:
        pid_text, host, *command = lock.read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return None  # unreadable or half-written: not a live run's
    if host != socket.gethostname():
        return f"pid {pid} on {host}"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    if pid == os.getpid():
        return None
    return f"pid {pid}, gicnet {' '.join(command)}".strip()

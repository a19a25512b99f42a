"""Joining a Ray cluster: the local one, an existing cluster's address, or a Ray Client.

``gicnet ... --ray [ADDRESS]`` and the Python functions of :mod:`gicnet_runtime.cluster`
call :func:`connect` once.  Without an address (``None`` or ``"local"``) Ray starts a
cluster of this machine's cores for the run and stops it afterwards; ``"auto"`` joins
the cluster that ``ray start`` runs on this machine; ``HOST:PORT`` joins a cluster's
head node and ``ray://HOST:10001`` a Ray Client server.  A run inside a process that is
already connected (a notebook, a test fixture) uses that connection and leaves it open.
Ray's own logging is kept to errors so that the command's output stays readable.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

from gicnet_runtime.errors import InputError, one_line

#: ``--ray`` without an address.
LOCAL = "local"


def import_ray():
    """The ``ray`` module, or a one-line InputError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs Ray: pip install 'gicnet[ray]'") from None
    return ray


@contextlib.contextmanager
def connect(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[object]:
    """Connected to Ray for the block; yields the ``ray`` module.

    Args:
        address: None or ``"local"`` (a local cluster started for the block), ``"auto"``,
            ``HOST:PORT`` or ``ray://HOST:PORT`` (see the module docstring).
        num_cpus: CPUs of a local cluster (default: Ray's, all of this machine's).
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    logging.getLogger("ray").setLevel(logging.ERROR)
    options = {"include_dashboard": False, "logging_level": logging.ERROR,
               "log_to_driver": False, "configure_logging": True}
    local = address in (None, LOCAL)
    if local:  # a new cluster, even where `ray start` runs one on this machine
        options.update(address="local", num_cpus=num_cpus)
    else:
        options["address"] = address
    try:
        ray.init(**options)
    except Exception as err:  # noqa: BLE001  (ConnectionError, RuntimeError, ValueError...)
        where = "start a local Ray cluster" if local else f"connect to Ray at {address}"
        raise InputError(f"cannot {where}: {one_line(err)}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def cluster_size(ray) -> tuple[int, int]:
    """(CPUs, GPUs) of the connected cluster, whole numbers."""
    resources = ray.cluster_resources()
    return int(resources.get("CPU", 0)), int(resources.get("GPU", 0))


def task_failure(err: BaseException) -> str:
    """One line for an error a Ray task or actor raised: the gicnet error inside a
    ``RayTaskError`` when there is one, else Ray's own message."""
    cause = getattr(err, "cause", None)
    if cause is not None and not isinstance(cause, type(err)):
        return one_line(cause)
    return one_line(err)

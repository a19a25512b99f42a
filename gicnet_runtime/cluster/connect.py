"""Joining a Ray cluster: the local one, an existing cluster's address, or a Ray Client.

``gicnet ... --ray [ADDRESS]`` and the Python functions of :mod:`gicnet_runtime.cluster`
call :func:`connect` once.  Without an address (``None`` or ``"local"``) Ray starts a
cluster of this machine's cores for the run and stops it afterwards; ``"auto"`` joins
the cluster that ``ray start`` runs on this machine; ``HOST:PORT`` joins a cluster's
head node and ``ray://HOST:10001`` a Ray Client server.  A run inside a process that is
already connected (a notebook, a test fixture) uses that connection and leaves it open.
Ray's own logging is kept to errors so that the command's output stays readable.

Token authentication (Ray 2.60): ``ray start --head`` turns it on by default, and a
driver that joins by address is refused unless it sends the cluster's token, yet Ray
only sends one when ``RAY_AUTH_MODE=token`` is set.  :func:`connect` therefore turns token
mode on for an address when ``RAY_AUTH_MODE`` is unset and a token is at hand
(``RAY_AUTH_TOKEN``, the file ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``, which
``ray start`` writes on the head node; a cluster without authentication ignores it).
``RAY_AUTH_MODE`` set by the user is left as it is.

A Ray Client server starts one server process per driver, and on a head node that has only
just started, that start now and then fails (Ray answers "Starting Ray client server
failed"; seen with Ray 2.60 a few seconds after ``ray start --head``, while the next
driver connects).  :func:`connect` tries such a connection again, up to
:data:`CLIENT_ATTEMPTS` times in all, before it reports the error.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator

from gicnet_runtime.errors import GicnetError, InputError, one_line

#: ``--ray`` without an address.
LOCAL = "local"
#: What to do when a cluster refuses the driver for want of its token.
TOKEN_HINT = ("if the cluster uses token authentication, copy its token (`ray get-auth-token` "
              "on the head node) to ~/.ray/auth_token or set RAY_AUTH_TOKEN")

#: Attempts at a ``ray://`` connection whose client server failed to start.
CLIENT_ATTEMPTS = 3
#: What Ray's client server answers when the server process for a driver did not start:
#: its own message, or a traceback through the function that starts that process (a
#: psutil.ZombieProcess when the process died before Ray looked at it).
CLIENT_START_FAILED = "Starting Ray client server failed"
CLIENT_START_MARKERS = (CLIENT_START_FAILED, "start_specific_server")


def token_available(environ=os.environ, home: str | None = None) -> bool:
    """Whether a Ray authentication token is at hand: ``RAY_AUTH_TOKEN``, a non-empty file
    at ``RAY_AUTH_TOKEN_PATH``, or ``~/.ray/auth_token``."""
    if environ.get("RAY_AUTH_TOKEN", "").strip():
        return True
    home = os.path.expanduser("~") if home is None else home
    path = environ.get("RAY_AUTH_TOKEN_PATH") or os.path.join(home, ".ray", "auth_token")
    try:
        with open(path) as fh:
            return bool(fh.read().strip())
    except OSError:
        return False


def enable_token_auth(environ=os.environ) -> bool:
    """Turn Ray's token mode on for this process (and the workers it starts) when
    ``RAY_AUTH_MODE`` is unset and :func:`token_available`; whether it did."""
    if "RAY_AUTH_MODE" in environ or not token_available(environ):
        return False
    environ["RAY_AUTH_MODE"] = "token"
    from ray._raylet import Config  # Ray reads RAY_AUTH_MODE when imported: read it again

    Config.initialize("")
    return True


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
        enable_token_auth()
    try:
        _init(ray, options, retry=str(address).startswith("ray://"))
    except Exception as err:  # noqa: BLE001  (ConnectionError, RuntimeError, ValueError...)
        if local:
            raise InputError(f"cannot start a local Ray cluster: {one_line(err)}") from None
        hint = "" if os.environ.get("RAY_AUTH_MODE") == "token" else f" ({TOKEN_HINT})"
        raise InputError(f"cannot connect to Ray at {address}: {one_line(err)}{hint}") from None
    try:
        yield ray
    except ModuleNotFoundError as err:  # a cluster's worker could not unpickle our code
        if "No module named 'gicnet" not in str(err):
            raise
        raise GicnetError(f"the Ray cluster cannot import gicnet ({one_line(err)}): install "
                          "the same gicnet on every node") from None
    finally:
        ray.shutdown()


def _init(ray, options: dict, *, retry: bool, pause_s: float = 2.0) -> None:
    """``ray.init(**options)``; with ``retry``, again after a pause while the error is a
    client server that failed to start (:data:`CLIENT_START_MARKERS`), at most
    :data:`CLIENT_ATTEMPTS` times in all."""
    for attempt in range(1, CLIENT_ATTEMPTS + 1):
        try:
            ray.init(**options)
            return
        except Exception as err:  # noqa: BLE001  (Ray raises several kinds)
            if (not retry or attempt == CLIENT_ATTEMPTS
                    or not any(marker in str(err) for marker in CLIENT_START_MARKERS)):
                raise
        time.sleep(pause_s)


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

"""``--ray ADDRESS`` against a real cluster made by ``ray start --head`` (token
authentication on, Ray 2.60's default): by the head's address and through its Ray Client
server, with the token found where ``ray start`` leaves it, and a one-line error that
says what to do when the driver has no token."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from gicnet_runtime.cluster import connect as connect_module
from gicnet_runtime.cluster.connect import (CLIENT_ATTEMPTS, CLIENT_START_FAILED, TOKEN_HINT,
                                            enable_token_auth, token_available)
from gicnet_runtime.errors import GicnetError, InputError
from gicnet_runtime.io.formats import read_trajectory
from gicnet_runtime.io.outputs import numbered_paths

ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _environment(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env.update(HOME=str(home), RAY_USAGE_STATS_ENABLED="0")
    return env


@pytest.fixture(scope="module")
def head():
    """A one-CPU head node with token authentication, as README sets one up: a token made
    by ``ray get-auth-token --generate`` in its own HOME, then ``ray start --head --block``
    in its own process group; stopped by killing that group."""
    from ray.util import get_node_ip_address

    home = Path(tempfile.mkdtemp(prefix="gh", dir="/tmp"))
    temp = Path(tempfile.mkdtemp(prefix="gr", dir="/tmp"))  # short: Ray's socket paths
    ip, port, client_port = get_node_ip_address(), _free_port(), _free_port()
    subprocess.run(["ray", "get-auth-token", "--generate"], env=_environment(home),
                   check=True, capture_output=True, timeout=60)
    proc = subprocess.Popen(
        ["ray", "start", "--head", "--block", f"--port={port}",
         f"--ray-client-server-port={client_port}", f"--node-ip-address={ip}",
         "--num-cpus=1", "--include-dashboard=false", "--disable-usage-stats",
         f"--temp-dir={temp}"],
        env=_environment(home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    deadline = time.monotonic() + 120
    while not _listening(ip, client_port):
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("ray start --head did not come up")
        time.sleep(0.5)
    yield {"address": f"{ip}:{port}", "client": f"ray://{ip}:{client_port}", "home": home}
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(temp, ignore_errors=True)


def _listening(ip: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((ip, port)) == 0


def _propagate(address: str, home: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "propagate", "--duration-fs", "20",
         "--frames", "0:1", "--out", str(out), "--ray", address, "--device", "cpu"],
        env=_environment(home), capture_output=True, text=True, timeout=300, check=False)


def _one_process(tmp_path: Path) -> list:
    out = tmp_path / "one" / "t.xyz"
    out.parent.mkdir()
    done = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "propagate", "--duration-fs", "20",
         "--frames", "0:1", "--out", str(out), "--device", "cpu"],
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return [read_trajectory(p) for p in numbered_paths(out, 2)]


@pytest.mark.parametrize("kind", ["address", "client"])
def test_joins_a_ray_start_cluster_with_its_token(head, kind, tmp_path):
    out = tmp_path / "ray" / "t.xyz"
    out.parent.mkdir()
    done = _propagate(head[kind], head["home"], out)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"on Ray ({head[kind]})" in done.stdout
    for ours, ref in zip([read_trajectory(p) for p in numbered_paths(out, 2)],
                         _one_process(tmp_path)):
        assert ours.n_frames == ref.n_frames == 41
        assert np.abs(ours.positions - ref.positions).max() <= 1e-6


def test_without_the_token_one_line_says_where_to_put_it(head, tmp_path):
    stranger = tmp_path / "home"
    stranger.mkdir()
    out = tmp_path / "t.xyz"
    done = _propagate(head["address"], stranger, out)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    error = [line for line in done.stderr.splitlines() if line.startswith("gicnet: error")]
    assert len(error) == 1 and TOKEN_HINT in error[0], done.stderr[-2000:]
    assert not list(tmp_path.glob("t*.xyz"))


def test_token_is_found_in_the_environment_the_path_or_home(tmp_path):
    assert not token_available({}, home=str(tmp_path))
    assert token_available({"RAY_AUTH_TOKEN": "abc"}, home=str(tmp_path))
    (tmp_path / "tok").write_text("abc\n")
    assert token_available({"RAY_AUTH_TOKEN_PATH": str(tmp_path / "tok")}, home="/nonexistent")
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("")
    assert not token_available({}, home=str(tmp_path))  # an empty file is no token
    (tmp_path / ".ray" / "auth_token").write_text("abc")
    assert token_available({}, home=str(tmp_path))


def test_a_mode_the_user_set_is_left_alone():
    environ = {"RAY_AUTH_MODE": "disabled", "RAY_AUTH_TOKEN": "abc"}
    assert not enable_token_auth(environ)
    assert environ["RAY_AUTH_MODE"] == "disabled"


class _FlakyRay:
    """A stand-in for the ``ray`` module whose ``init`` raises ``errors`` in turn, then
    connects."""

    def __init__(self, errors):
        self.errors, self.calls, self.connected = list(errors), 0, False

    def is_initialized(self):
        return self.connected

    def init(self, **options):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        self.connected = True

    def shutdown(self):
        self.connected = False


def _server_failed():
    return ConnectionAbortedError(f"Initialization failure from server: RuntimeError: "
                                  f"{CLIENT_START_FAILED}. See ray_client_server_23000.err")


def _server_died():
    """The same race seen from Ray's side while it waits for the new process (CI)."""
    return ConnectionAbortedError(
        'Initialization failure from server: Traceback (most recent call last): File "proxier.py",'
        ' line 396, in start_specific_server cmd = psutil_proc.cmdline() psutil.ZombieProcess: '
        "PID still exists but it's a zombie (pid=9665)")


@pytest.mark.parametrize("failures", [[_server_failed()], [_server_died()],
                                      [_server_died(), _server_failed()]])
def test_a_client_server_that_failed_to_start_is_tried_again(monkeypatch, failures):
    assert len(failures) < CLIENT_ATTEMPTS
    fake = _FlakyRay(failures)
    monkeypatch.setattr(connect_module, "import_ray", lambda: fake)
    monkeypatch.setattr(connect_module.time, "sleep", lambda s: None)
    monkeypatch.setattr(connect_module, "enable_token_auth", lambda: False)
    with connect_module.connect("ray://10.0.0.1:10001") as ray:
        assert ray.is_initialized()
    assert fake.calls == len(failures) + 1 and not fake.connected


def test_client_retries_end_in_one_line_and_other_errors_are_not_retried(monkeypatch):
    monkeypatch.setattr(connect_module.time, "sleep", lambda s: None)
    monkeypatch.setattr(connect_module, "enable_token_auth", lambda: False)
    fake = _FlakyRay([_server_failed()] * CLIENT_ATTEMPTS)
    monkeypatch.setattr(connect_module, "import_ray", lambda: fake)
    with pytest.raises(InputError, match=CLIENT_START_FAILED):
        with connect_module.connect("ray://10.0.0.1:10001"):
            pass
    assert fake.calls == CLIENT_ATTEMPTS
    for address, error in [("ray://10.0.0.1:10001", ConnectionError("refused")),
                           ("10.0.0.1:6379", _server_failed())]:  # only ray:// is retried
        fake = _FlakyRay([error, error])
        monkeypatch.setattr(connect_module, "import_ray", lambda: fake)
        with pytest.raises(InputError, match="cannot connect to Ray"):
            with connect_module.connect(address):
                pass
        assert fake.calls == 1


def test_a_cluster_without_gicnet_is_one_line(monkeypatch):
    """Ray Client hands a worker's failed unpickling back as the worker's
    ModuleNotFoundError; that becomes one line saying what to install."""
    monkeypatch.setattr(connect_module, "enable_token_auth", lambda: False)
    fake = _FlakyRay([])
    monkeypatch.setattr(connect_module, "import_ray", lambda: fake)
    with pytest.raises(GicnetError, match="install the same gicnet on every node") as caught:
        with connect_module.connect("ray://10.0.0.1:10001"):
            raise ModuleNotFoundError("No module named 'gicnet_runtime'")
    assert "\n" not in str(caught.value) and not fake.connected
    with pytest.raises(ModuleNotFoundError):  # the driver's own missing modules stay as they are
        with connect_module.connect("ray://10.0.0.1:10001"):
            raise ModuleNotFoundError("No module named 'h5py'")

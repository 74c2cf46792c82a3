"""A real one-node Ray cluster for the cluster-mode tests and benchmark, started and stopped by process id.

Ray advertises the host's interface address even when told 127.0.0.1, so the head and every driver run inside
a network namespace whose only interface is loopback (`unshare -n`, then `ip link set lo up`): there Ray can
only use 127.0.0.1, and nothing leaves the machine. Needs root (or user namespaces) and util-linux.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).parent / "ray"
PORT = 6379  # the namespace has its own ports: nothing else can hold this one


def unavailable_reason() -> str | None:
    """Why a namespaced Ray head cannot run here (for a skip), or None when it can."""
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        return "ray[data] is not installed (the `cluster` extra; `make test` installs it)"
    if not RAY.exists():
        return f"no `ray` executable beside {sys.executable}"
    for tool in ("unshare", "nsenter", "ip"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (util-linux / iproute2): the test cluster needs a network namespace"
    if os.geteuid() != 0:
        return "creating a network namespace needs root"
    return None


class RayHead:
    """`ray start --head --block` in its own loopback-only network namespace; `run` starts drivers there."""

    def __init__(self, cpus: int = 2):
        self.cpus = cpus
        self.address = f"127.0.0.1:{PORT}"
        # Short: Ray's Unix sockets live under it and a socket path may not exceed 107 bytes.
        self.temp = Path(tempfile.mkdtemp(prefix="crk-ray-", dir="/tmp"))
        # Workers import this tree. No token authentication: the namespace's loopback is its only network, and
        # Ray 2.60 turns tokens on when ~/.ray/auth_token exists, which a local ray.init() anywhere on the machine
        # leaves behind (a stray one made every test here fail at "the Ray head did not come up").
        self.env = dict(os.environ, PYTHONPATH=str(ROOT), RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
        self.holder = self.head = None
        self.start_seconds = None

    def start(self, timeout: float = 90) -> "RayHead":
        t0 = time.perf_counter()
        self.holder = subprocess.Popen(["unshare", "-n", "--fork", "sh", "-c",
                                        "ip link set lo up; exec sleep infinity"], start_new_session=True)
        deadline = time.monotonic() + timeout
        while "UP" not in subprocess.run(self.ns(["ip", "-o", "link", "show", "lo"]), capture_output=True,
                                         text=True).stdout:
            self._check(deadline, "the network namespace's loopback did not come up")
            time.sleep(0.1)
        self.log = open(self.temp / "head.log", "w")
        self.head = subprocess.Popen(self.ns([str(RAY), "start", "--head", "--block", "--port", str(PORT),
                                              "--num-cpus", str(self.cpus), "--include-dashboard", "false",
                                              "--disable-usage-stats", "--temp-dir", str(self.temp / "ray")]),
                                     env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        while subprocess.run(self.ns([str(RAY), "status", "--address", self.address]), env=self.env,
                             capture_output=True).returncode != 0:
            if self.head.poll() is not None:
                raise RuntimeError(f"ray start exited with {self.head.returncode}: {self.head_log()}")
            self._check(deadline, "the Ray head did not come up")
            time.sleep(0.5)
        self.start_seconds = time.perf_counter() - t0
        return self

    def _check(self, deadline: float, what: str) -> None:
        if time.monotonic() > deadline:
            self.stop()
            raise RuntimeError(f"{what}: {self.head_log()}")

    def head_log(self) -> str:
        path = self.temp / "head.log"
        return path.read_text()[-2000:] if path.exists() else ""

    def ns(self, command: list[str]) -> list[str]:
        """`command` run inside the namespace."""
        return ["nsenter", "-t", str(self.holder.pid), "-n", "--", *command]

    def crackdesk(self, *args) -> list[str]:
        return self.ns([sys.executable, "-m", "crackdesk", *map(os.fsdecode, args)])

    def run(self, *args, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run(self.crackdesk(*args), env=self.env, capture_output=True, text=True, timeout=timeout)

    def stop(self) -> None:
        """SIGTERM to the head's process group (ray stops its raylet and GCS), SIGKILL what is left, then the
        namespace holder. Only processes this object started."""
        for proc, grace in ((self.head, 15), (self.holder, 2)):
            if proc is None or proc.poll() is not None:
                continue
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
            except ProcessLookupError:
                continue
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the group: raylet, GCS and workers started under it
            except ProcessLookupError:
                pass
            proc.wait(10)
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.temp, ignore_errors=True)

    def leftovers(self) -> list[str]:
        """Ray processes still running from this head's temp dir (there should be none after stop)."""
        out = subprocess.run(["pgrep", "-af", str(self.temp)], capture_output=True, text=True).stdout
        return [line for line in out.splitlines() if "pgrep" not in line]

"""Cluster mode: `crackdesk classify FOLDER --cluster ADDRESS` runs the photos through a Ray cluster
(crackdesk/cluster/runner.py) and stores the results exactly as a local run does.

Ray is optional (`pip install 'crackdesk[cluster]'`) and imported only here, only when cluster mode is asked
for; the desktop bundle does not carry it (Ray inside frozen executables is unreliable), so the bundle's
`--cluster` says how to run it from a Python install instead.
"""

from __future__ import annotations

import logging
import socket
import sys
from contextlib import contextmanager

from ..core.errors import CrackDeskError

INSTALL_HINT = ("cluster mode needs Ray in a Python install of CrackDesk: pip install 'crackdesk[cluster]' "
                "(from the source: .venv/bin/pip install -e '.[cluster]'), then run crackdesk from there")


def require_ray():
    """The ray module, or a CrackDeskError saying how to get a CrackDesk that has it."""
    if getattr(sys, "frozen", False):
        raise CrackDeskError(f"the desktop bundle does not include Ray; {INSTALL_HINT}")
    try:
        import ray
        import ray.data  # noqa: F401  (the [data] extra)
    except ImportError as e:
        raise CrackDeskError(f"Ray is not installed ({e}); {INSTALL_HINT}") from None
    return ray


@contextmanager
def connected(address: str):
    """Connect this process to the running Ray cluster at `address` (HOST:PORT, ray://HOST:PORT or auto) and
    disconnect afterwards. Never starts a cluster, and never stops one: others may be using it.
    The workers import the `crackdesk` installed on their node (the model stage refuses another version than
    this one's); shipping this package with every job (`runtime_env`) was measured at ~10 s a job on 2 cores."""
    ray = require_ray()
    if not address or not address.strip():
        raise CrackDeskError("--cluster needs the address of a running Ray cluster (HOST:PORT, ray://HOST:PORT "
                             "or auto)")
    check_reachable(address)
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    except Exception as e:  # ConnectionError, ValueError, RuntimeError... whatever the address's problem was
        text = str(e).strip().splitlines()
        raise CrackDeskError(f"cannot connect to the Ray cluster at {address}: "
                             f"{(text[0] if text else type(e).__name__)[:300]}") from None
    quiet_ray_data()
    try:
        yield ray
    finally:
        ray.shutdown()  # this driver's connection only


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """A HOST:PORT nobody answers on fails here, in seconds: Ray itself would wait for it indefinitely."""
    host, sep, port = address.rpartition(":")
    if address == "auto" or "://" in address or not sep or not port.isdigit():
        return  # `auto` and ray:// are resolved by Ray, which reports them itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise CrackDeskError(f"cannot connect to the Ray cluster at {address}: {e.strerror or e} (is `ray start "
                             f"--head --port {port}` running there, and the port open to this machine?)") from None


def quiet_ray_data() -> None:
    """The CLI draws its own progress bar and summary: no Ray Data bars or execution logs on stderr."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.enable_auto_log_stats = False
    # Ray Data logs its own notes (and a failed job's internals) here; the CLI reports a failure in one line.
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)


@contextmanager
def cluster_source(address: str | None, classifier, ship_bytes: bool = False):
    """What `classify`/`evaluate` compute their predictions with: None (the local pipeline) without an
    address, else a ClusterSource on the connected cluster, disconnected when the block ends."""
    if not address:
        if ship_bytes:
            raise CrackDeskError("--ship-bytes only applies with --cluster ADDRESS")
        yield None
        return
    with connected(address):
        from .runner import ClusterSource

        source = ClusterSource(classifier, ship_bytes, address)
        try:
            yield source
        finally:
            source.close()  # before the disconnect

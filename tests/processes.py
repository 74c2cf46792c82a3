"""Running CrackDesk's command line as a user would, for the hostile-input tests (no tests here).

Permission cases need a process that permissions apply to. These machines run the tests as root, whom
chmod does not stop; `setpriv` drops root's capabilities that bypass file permissions (DAC override,
read-search, fowner), so root becomes an ordinary owner: a mode-000 folder it owns is closed to it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

DROP = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"]


def unprivileged_prefix() -> list[str]:
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            raise RuntimeError("setpriv (util-linux) is needed to test permissions as root")
        return DROP
    return []


def run_cli(*args, unprivileged: bool = False, umask: int | None = None, timeout: float = 120, env=None,
            cwd=None) -> subprocess.CompletedProcess:
    """`python -m crackdesk ARGS` in a child process; stdout and stderr as text (file names that are not UTF-8
    keep their bytes as surrogate escapes)."""
    command = [sys.executable, "-m", "crackdesk", *map(os.fsdecode, args)]
    if unprivileged:
        command = unprivileged_prefix() + command
    preexec = (lambda: os.umask(umask)) if umask is not None else None
    return subprocess.run(command, capture_output=True, timeout=timeout, env=env, cwd=cwd, preexec_fn=preexec,
                          encoding="utf-8", errors="surrogateescape")


def as_in_a_terminal() -> None:
    """A child's `preexec_fn`: Ctrl-C (SIGINT) delivered as in a terminal. Tests started in the background
    (`nohup make test &`) inherit SIGINT ignored, and Python then installs no KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The single `crackdesk: ...` line of a refused command (asserting there is no traceback)."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("crackdesk")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def children(parent: int, marker: str) -> list[int]:
    """The running child processes of `parent` whose command line contains `marker` (Linux /proc)."""
    found = []
    for task in os.listdir(f"/proc/{parent}/task") if os.path.isdir(f"/proc/{parent}/task") else []:
        try:
            with open(f"/proc/{parent}/task/{task}/children") as f:
                pids = [int(pid) for pid in f.read().split()]
        except OSError:
            continue
        for pid in pids:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        found.append(pid)
            except OSError:
                pass  # exited meanwhile
    return found


def gone(pid: int) -> bool:
    """Exited (a zombie not yet reaped by its new parent counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def workspace_count(workspace, query: str) -> int:
    """A COUNT(*) query on a workspace another process is writing, read-only; 0 before it exists or has tables."""
    import sqlite3

    if not os.path.exists(workspace):
        return 0
    try:
        with sqlite3.connect(f"file:{workspace}?mode=ro", uri=True, timeout=1) as db:
            return db.execute(query).fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0

"""How to run CrackDesk's own command line in a child process (training, from the GUI; classify's workers).

From source: this Python interpreter with `-m crackdesk`. In a PyInstaller bundle there is no Python to
look for: the executable re-runs itself with the subcommand."""

from __future__ import annotations

import sys

from .paths import is_frozen


# The hidden subcommand a worker process of `classify` runs (core/worker_processes.py), told apart in cli/main.py
# before anything heavy is imported.
WORKER_COMMAND = "_classify-worker"


def crackdesk_command(*args: str) -> list[str]:
    if is_frozen():
        return [sys.executable, *args]
    return [sys.executable, "-m", "crackdesk", *args]

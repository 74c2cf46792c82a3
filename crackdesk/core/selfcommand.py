"""How to run CrackDesk's own command line in a child process (training, from the GUI).

From source: this Python interpreter with `-m crackdesk`. In a PyInstaller bundle there is no Python to
look for: the executable re-runs itself with the subcommand."""

from __future__ import annotations

import sys

from .paths import is_frozen


def crackdesk_command(*args: str) -> list[str]:
    if is_frozen():
        return [sys.executable, *args]
    return [sys.executable, "-m", "crackdesk", *args]

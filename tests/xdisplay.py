"""A real X server for the desktop tests (no tests here): Xvfb on a free display number, the top-level
windows it shows (read with xwininfo, as a window manager would see them), and running the app on it.

The rest of the suite runs Qt offscreen, which needs none of the system libraries of Qt's xcb platform;
these tests use xcb as a desktop does, so a missing library fails them (docs/decisions.md, note 10)."""

from __future__ import annotations

import os
import re
import select
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SCREEN = (1366, 768)  # a common laptop screen: every window must fit it
TITLE_BAR = 40  # what a window manager adds above a window; Xvfb alone has none, so room is left for it


@dataclass
class Window:
    id: str
    title: str
    x: int
    y: int
    width: int
    height: int


class XServer:
    """Xvfb started by this process; `stop` ends it by its pid."""

    def __init__(self, width: int, height: int, timeout: float = 20):
        read_end, write_end = os.pipe()
        self.log = tempfile.TemporaryFile()  # a file, not a pipe nobody drains, so Xvfb never blocks on it
        # -displayfd: Xvfb picks a free display number itself (it takes the lock file) and writes it to
        # the pipe once it accepts connections, so parallel runs never collide and no sleep is needed.
        # -noreset: no server reset each time the last client leaves (every xwininfo poll, a crashed app),
        # during which a new connection is refused.
        self.process = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_end), "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp",
             "-noreset"],
            pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=self.log)
        os.close(write_end)
        line, deadline = b"", time.monotonic() + timeout
        try:  # the whole line: Xvfb dies if the pipe closes before its newline is written
            while not line.endswith(b"\n") and select.select([read_end], [], [],
                                                                max(0, deadline - time.monotonic()))[0]:
                chunk = os.read(read_end, 32)
                if not chunk:
                    break  # Xvfb exited
                line += chunk
        finally:
            os.close(read_end)
        number = line.decode().strip()
        if not number.isdigit():
            self.stop()
            self.log.seek(0)
            raise RuntimeError(f"Xvfb did not start: {self.log.read().decode(errors='replace')[-2000:]}")
        self.display = f":{number}"

    def env(self, base: dict) -> dict:
        """`base` with Qt's desktop platform on this server (and no other display to fall back on)."""
        env = {k: v for k, v in base.items() if k not in ("WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
        return {**env, "DISPLAY": self.display, "QT_QPA_PLATFORM": "xcb"}

    def top_level_windows(self) -> list[Window]:
        """The mapped (viewable) children of the root window. Without a window manager they are exactly
        the applications' top-level windows, at the geometry the application gave them."""
        env = {**os.environ, "LC_ALL": "C.UTF-8"}  # titles are UTF-8 ("photos — CrackDesk")
        listing = subprocess.run(["xwininfo", "-display", self.display, "-root", "-children"],
                                 capture_output=True, text=True, env=env)
        assert listing.returncode == 0, f"xwininfo on {self.display}: {listing.stderr.strip()}"
        tree = listing.stdout
        windows = []
        for window_id in re.findall(r"^\s+(0x[0-9a-f]+) ", tree, re.M):
            info = subprocess.run(["xwininfo", "-display", self.display, "-id", window_id],
                                  capture_output=True, text=True, env=env)
            if info.returncode != 0 or "Map State: IsViewable" not in info.stdout:
                continue  # unmapped, or gone since the listing
            title = re.search(r'^xwininfo: Window id: 0x[0-9a-f]+ "(.*)"$', info.stdout, re.M)
            number = {key: int(re.search(rf"^\s+{key}:\s+(-?\d+)", info.stdout, re.M).group(1))
                      for key in ("Absolute upper-left X", "Absolute upper-left Y", "Width", "Height")}
            windows.append(Window(window_id, title.group(1) if title else "", number["Absolute upper-left X"],
                                  number["Absolute upper-left Y"], number["Width"], number["Height"]))
        return windows

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.log.close()


@dataclass
class GuiRun:
    returncode: int
    output: str
    windows: list[Window] = field(default_factory=list)  # every viewable top-level window seen while it ran


def run_gui(server: XServer, argv: list[str], env: dict, log: Path, timeout: float = 60) -> GuiRun:
    """Run a GUI process on the server until it exits, polling which windows it shows meanwhile."""
    seen: dict[str, Window] = {}
    with log.open("w+") as out:
        child = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        try:
            while child.poll() is None:
                assert time.monotonic() < deadline, f"{argv} still running after {timeout} s"
                for window in server.top_level_windows():
                    seen[window.id] = window  # the latest title and geometry
                time.sleep(0.1)
        finally:
            child.kill()
            child.wait()
        out.seek(0)
        return GuiRun(child.returncode, out.read(), list(seen.values()))


def misfit(name: str, frame, available) -> str | None:
    """Why the window `frame` (x, y, width, height) does not fit the screen's `available` area, or None."""
    x, y, width, height = frame
    ax, ay, aw, ah = available
    if not (ax <= x and x + width <= ax + aw):
        return f"{name}: {frame} is wider than the screen {available}"
    if not (ay <= y and y + height <= ay + ah):
        return f"{name}: {frame} is taller than the screen {available}"
    if height + TITLE_BAR > ah:
        return f"{name}: {height} px high leaves no room for a title bar on {available}"
    return None


def assert_window_shown_then_quit(server: XServer, run: GuiRun) -> None:
    """The app showed a CrackDesk window that fits the screen, then exited 0 on its own."""
    windows = [w for w in run.windows if "CrackDesk" in w.title]
    assert windows, f"no CrackDesk window appeared on {server.display} (exit {run.returncode}):\n{run.output}"
    assert run.returncode == 0, run.output
    main = windows[0]
    assert misfit("main window", (main.x, main.y, main.width, main.height), (0, 0, *SCREEN)) is None

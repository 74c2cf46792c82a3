"""The app on a real X server (Xvfb) with Qt's desktop platform, xcb, instead of offscreen: it starts, its
window appears and it quits on its own (issue 10: it aborted on a desktop for want of libxcb-cursor0);
and its main window and every dialog fit a 1366x768 laptop screen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from factories import make_tiny_model
from xdisplay import SCREEN, assert_window_shown_then_quit, misfit, run_gui

from crackdesk.core.demo import write_demo_folder

ROOT = Path(__file__).resolve().parents[1]


def app_env(x_server, tmp_path: Path) -> dict:
    models = tmp_path / "models"
    models.mkdir()
    make_tiny_model(models / "tiny.onnx")
    # The user dirs are already in tmp (conftest); PYTHONPATH: this checkout's code, whatever is installed.
    return x_server.env({**os.environ, "CRACKDESK_MODELS_DIR": str(models), "PYTHONPATH": str(ROOT)})


def test_the_app_shows_its_window_on_an_x_display_and_quits(x_server, tmp_path):
    folder = tmp_path / "photos"
    write_demo_folder(folder, count=8)
    run = run_gui(x_server, [sys.executable, "-m", "crackdesk", "gui", str(folder), "--quit-after", "2"],
                  app_env(x_server, tmp_path), tmp_path / "app.log")
    assert_window_shown_then_quit(x_server, run)


def test_every_window_fits_a_1366x768_screen(x_server, tmp_path):
    folder = tmp_path / "photos"
    write_demo_folder(folder, count=4)
    result = subprocess.run([sys.executable, str(ROOT / "tests" / "window_sizes.py"), str(folder),
                             str(tmp_path / "settings.ini")], env=app_env(x_server, tmp_path),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    sizes = json.loads(result.stdout.splitlines()[-1])
    assert sizes["screen"] == [0, 0, *SCREEN]  # really on the small screen, through the xcb platform
    assert set(sizes["frames"]) == {"main", "models", "retrain", "viewer", "report"}
    problems = [misfit(name, frame, sizes["available"]) for name, frame in sizes["frames"].items()]
    assert not [p for p in problems if p]

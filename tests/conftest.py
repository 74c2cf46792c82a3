"""Shared test setup: Qt offscreen (the desktop tests start their own X server), user data isolated per test,
paths to ../shared when present."""

import os
import shutil
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(TESTS))  # for the factories module


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Imported models, fallback workspaces, thumbnails and settings never touch the real user's dirs."""
    base = tmp_path_factory.mktemp("userdirs")
    monkeypatch.setenv("CRACKDESK_DATA_DIR", str(base / "data"))
    monkeypatch.setenv("CRACKDESK_CACHE_DIR", str(base / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(base / "config"))
    return base


@pytest.fixture(scope="session")
def x_server():
    """A real X server (Xvfb) with a 1366x768 screen, for the tests that run Qt's desktop platform."""
    from xdisplay import SCREEN, XServer

    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (Debian package xvfb; `make test` installs it)")
    server = XServer(*SCREEN)
    yield server
    server.stop()


@pytest.fixture
def shared_data():
    path = SHARED / "data"
    if not (path / "ccic").is_dir():
        pytest.skip(f"real data not available: {path} is absent")
    return path


@pytest.fixture
def tiny_model(tmp_path):
    from factories import make_tiny_model

    return make_tiny_model(tmp_path / "tiny.onnx")


# -- the GUI tests' window: a real main window offscreen, with a real (tiny) ONNX model as the shipped one --
@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    from factories import make_tiny_model

    folder = tmp_path / "models"
    folder.mkdir()
    make_tiny_model(folder / "tiny.onnx")
    monkeypatch.setenv("CRACKDESK_MODELS_DIR", str(folder))
    return folder


@pytest.fixture
def window(qtbot, tmp_path, models_dir):
    from test_gui_helpers import open_window

    w = open_window(qtbot, tmp_path / "settings.ini")
    yield w
    w.close()

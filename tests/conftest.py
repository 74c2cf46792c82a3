"""Shared test setup: Qt offscreen, user data isolated per test, paths to ../shared when present."""

import os
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

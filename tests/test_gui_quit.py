"""Quitting while background jobs are still starting must exit cleanly: a QThread that outlives the
event loop makes Qt abort the whole process (seen when the window closed mid folder-load)."""

import os
import subprocess
import sys

from factories import make_tiny_model

from crackdesk.core.demo import write_demo_folder


def test_quit_while_the_folder_is_still_loading(tmp_path):
    folder = tmp_path / "photos"
    write_demo_folder(folder, count=60)
    models = tmp_path / "models"
    models.mkdir()
    make_tiny_model(models / "tiny.onnx")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "CRACKDESK_MODELS_DIR": str(models)}
    for _ in range(3):  # a race: give it several chances to show
        result = subprocess.run([sys.executable, "-m", "crackdesk", "gui", str(folder), "--quit-after", "0"],
                                env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "Destroyed while thread" not in result.stderr

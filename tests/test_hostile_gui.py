"""Hostile and unlucky input in the real main window (issue 10): each test is a defect a tester reproduced.
The other hostile cases: test_hostile.py (command line, core) and test_hostile_models.py."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from crackdesk.core.store import open_workspace
from test_gui_helpers import demo_folder, load_folder, wait_jobs


def forget_hash(window, image_id: int) -> None:
    """As if the background hasher had not reached this image yet."""
    window.ws._write(lambda db: db.execute("UPDATE images SET hash=NULL WHERE id=?", (image_id,)))


def test_labelling_a_photo_deleted_before_it_was_hashed(qtbot, window, tmp_path):
    load_folder(qtbot, window, demo_folder(tmp_path, count=6))
    wait_jobs(qtbot, window)
    qtbot.waitUntil(lambda: window.hasher is None, timeout=10000)
    window.select_row(2)
    image_id = window.current_id()
    forget_hash(window, image_id)
    (window.folder / window.model.path_at(2)).unlink()
    QTest.keyClick(window.view, Qt.Key_C)
    qtbot.waitUntil(lambda: window.last_error is not None, timeout=5000)
    assert window.model.path_at(2).split("/")[-1] in window.last_error and "not found" in window.last_error
    qtbot.waitUntil(lambda: window.model.label_of_id(image_id) is None, timeout=5000)  # the grid went back
    assert window.undo_stack.count() == 0  # no phantom step
    window.undo_stack.undo()  # and Ctrl+Z has nothing to trip over
    window.ws.flush()
    with open_workspace(window.folder) as ws:
        assert ws.label_of(image_id) is None and ws.history(image_id) == []


def test_bulk_labelling_never_hashes_on_the_gui_thread(qtbot, window, tmp_path, monkeypatch):
    import crackdesk.core.store as store

    load_folder(qtbot, window, demo_folder(tmp_path, count=8))
    qtbot.waitUntil(lambda: window.hasher is None, timeout=10000)
    ids = [window.model.id_at(r) for r in range(8)]
    for image_id in ids:
        forget_hash(window, image_id)
    threads = []
    real = store.file_hash
    monkeypatch.setattr(store, "file_hash", lambda path: threads.append(threading.current_thread()) or real(path))
    window.view.selectAll()
    QTest.keyClick(window.view, Qt.Key_N)
    assert window.model.counts()["reviewed"] == 8  # shown at once
    window.ws.flush()
    assert len(threads) == 8 and threading.main_thread() not in threads
    with open_workspace(window.folder) as ws:
        assert [ws.label_of(i) for i in ids] == ["no_crack"] * 8


def test_a_folder_load_that_arrives_after_another_folder_was_opened_is_dropped(qtbot, window, tmp_path):
    first = demo_folder(tmp_path / "a", count=30)
    second = demo_folder(tmp_path / "b", count=5, seed=3)
    window.open_folder(first)
    first_session = window.session
    with qtbot.waitSignal(window.folder_loaded, timeout=20000):
        window.open_folder(second)
    wait_jobs(qtbot, window)
    qtbot.wait(200)  # any late result of the first folder would be delivered by now
    assert window.folder == second.resolve() and window.model.rowCount() == 5
    assert window.ws is not None and window.ws.folder == second.resolve()
    assert first_session.workspace is None  # closed, not applied


def test_a_file_name_that_is_not_utf8_shows_and_takes_a_label(qtbot, window, tmp_path):
    folder = demo_folder(tmp_path, count=3)
    odd = os.fsdecode(b"caf\xe9.jpg")
    os.rename(folder / sorted(os.listdir(folder))[0], folder / odd)
    load_folder(qtbot, window, folder)
    names = [window.model.data(window.model.index(r)) for r in range(3)]
    assert "caf\ufffd.jpg" in names  # shown with a replacement character, never a crash
    row = names.index("caf\ufffd.jpg")
    window.select_row(row)
    QTest.keyClick(window.view, Qt.Key_C)
    window.ws.flush()
    with open_workspace(folder) as ws:
        assert ws.label_of(ws.image_id(odd)) == "crack"


def test_the_app_opens_and_closes_a_folder_with_a_pipe_named_jpg(tmp_path, models_dir):
    folder = demo_folder(tmp_path, count=4)
    os.mkfifo(folder / "pipe.jpg")
    (folder / "zero.jpg").symlink_to("/dev/zero")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "config"))
    done = subprocess.run([sys.executable, "-m", "crackdesk", "gui", str(folder), "--quit-after", "2"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr

"""Models dialog (import validation, activation, removal), a short real retraining through the retrain
dialog, and labels surviving a kill -9 of the app right after they were acknowledged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from PySide6.QtTest import QTest

from crackdesk.core.demo import read_truth
from crackdesk.core.store import open_workspace
from factories import make_tiny_model, tiny_info
from test_gui_helpers import demo_folder, load_folder


def test_models_dialog_rejects_bad_files_and_imports_good_ones(qtbot, window, tmp_path):
    window.actions.open_models()
    dialog = window.models_dialog
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model")
    assert not dialog.import_file(str(text))
    assert dialog.error.isVisibleTo(dialog) and "not a valid ONNX model" in dialog.error.text()
    bare = make_tiny_model(tmp_path / "bare.onnx", metadata=False)
    assert not dialog.import_file(str(bare))
    assert "not a CrackDesk model" in dialog.error.text()
    assert dialog.list.count() == 1
    good = make_tiny_model(tmp_path / "mine.onnx", info=tiny_info(name="mine", version="2.0"))
    assert dialog.import_file(str(good))
    assert not dialog.error.isVisibleTo(dialog)
    assert dialog.list.count() == 2 and dialog.current().key == "mine@2.0"
    assert "mine" in dialog.details.toPlainText()
    with qtbot.waitSignal(dialog.activated):
        dialog.activate_button.click()
    assert window.entry.key == "mine@2.0"
    assert window.actions.model_combo.currentText().startswith("mine 2.0")
    dialog._remove(confirm=False)
    assert dialog.list.count() == 1


def test_retraining_through_the_dialog(qtbot, window, tmp_path):
    pytest.importorskip("torch")
    folder = demo_folder(tmp_path, count=36, seed=5)
    load_folder(qtbot, window, folder)
    truth = read_truth(folder)
    labels = {int(window.model.ids[k]): truth[p] for k, p in enumerate(window.model.paths)}
    window.ws.set_labels(labels)
    window.actions.open_retrain()
    dialog = window.retrain_dialog
    dialog.base.setCurrentIndex(0)  # from scratch
    dialog.arch.setCurrentIndex(dialog.arch.findData("cnn"))
    dialog.epochs.setValue(1)
    dialog.input_size.setValue(32)
    events = []
    dialog.event_received.connect(lambda e: events.append(e["event"]))
    dialog.start_button.click()
    assert dialog.process is not None
    QTest.qWait(50)  # the window stays responsive while the child trains
    qtbot.waitUntil(lambda: dialog.exit_code is not None, timeout=150000)
    assert dialog.exit_code == 0, dialog.log.toPlainText()
    assert "start" in events and "epoch" in events and events[-1] == "done"
    assert dialog.curves.points
    # About 6 validation images: the counts show in the matrices, the rates are withheld as too few to tell.
    assert "too few labels to tell" in dialog.results_box.title() and dialog.table.item(0, 0).text() == "—"
    assert dialog.old_matrix.metrics is not None  # compared with the active model
    assert dialog.activate_button.isEnabled()
    new_path = dialog.result["model"]
    with qtbot.waitSignal(window.classify_finished, timeout=60000):
        dialog.activate_button.click()
    assert str(window.entry.path) == new_path
    assert window.model.counts()["classified"] == 36


def test_cancelling_training_writes_no_model(qtbot, window, tmp_path):
    pytest.importorskip("torch")
    folder = demo_folder(tmp_path, count=24, seed=6)
    load_folder(qtbot, window, folder)
    truth = read_truth(folder)
    window.ws.set_labels({int(window.model.ids[k]): truth[p] for k, p in enumerate(window.model.paths)})
    window.actions.open_retrain()
    dialog = window.retrain_dialog
    dialog.base.setCurrentIndex(0)
    dialog.arch.setCurrentIndex(dialog.arch.findData("cnn"))
    dialog.epochs.setValue(50)
    dialog.input_size.setValue(32)
    events = []
    dialog.event_received.connect(lambda e: events.append(e["event"]))
    dialog.start_button.click()
    qtbot.waitUntil(lambda: "start" in events, timeout=120000)
    dialog.cancel_button.click()
    qtbot.waitUntil(lambda: dialog.exit_code is not None, timeout=60000)
    assert dialog.exit_code == 130 and "cancelled" in events
    assert not dialog.out_path.exists()
    assert not dialog.activate_button.isEnabled()


KILLED_APP = textwrap.dedent("""
    import os, sys, time
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication
    from crackdesk.ui.app import make_app
    from crackdesk.ui.main_window import MainWindow
    from crackdesk.ui.settings import Settings

    app = make_app()
    window = MainWindow(Settings(sys.argv[2]))
    window.show()
    window.open_folder(sys.argv[1])
    while window.ws is None:
        app.processEvents()
        time.sleep(0.01)
    window.select_row(0)
    saved = []
    window.labels_saved.connect(lambda: saved.append(1))
    for key in (Qt.Key_C, Qt.Key_N, Qt.Key_C):
        QTest.keyClick(window.view, key)
    while len(saved) < 3:  # the writer's acknowledgements: each change is committed
        app.processEvents()
        time.sleep(0.001)
    ids = [window.model.id_at(r) for r in range(3)]
    print("ACK", *ids, flush=True)
    time.sleep(60)
""")


def test_labels_survive_kill_9_right_after_acknowledgement(tmp_path):
    folder = demo_folder(tmp_path, count=8, seed=7)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    child = subprocess.Popen([sys.executable, "-c", KILLED_APP, str(folder), str(tmp_path / "s.ini")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = child.stdout.readline()
        assert line.startswith("ACK"), child.stderr.read()
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        child.kill()
    ids = [int(v) for v in line.split()[1:]]
    with open_workspace(folder) as ws:
        assert [ws.label_of(i) for i in ids] == ["crack", "no_crack", "crack"]
        assert len(ws.history(ids[0])) == 1

"""Site adaptation in the real window (issue 9): every key press refits the folder's site head off the GUI
thread and the grid, its filters and counts change; undo changes them back; U and the "Most useful next" sort
point at what to label next; the sidebar says what the adaptation rests on; each folder keeps its own model."""

from __future__ import annotations

import numpy as np
import pytest
from factories import make_adaptable_model
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from test_gui_helpers import classify_all, load_folder, open_window
from test_site import brick_site


@pytest.fixture
def site_window(qtbot, tmp_path, monkeypatch):
    models = tmp_path / "models"
    make_adaptable_model(models)
    monkeypatch.setenv("CRACKDESK_MODELS_DIR", str(models))
    window = open_window(qtbot, tmp_path / "settings.ini")
    truth = brick_site(tmp_path / "site")
    load_folder(qtbot, window, tmp_path / "site")
    classify_all(qtbot, window)
    yield window, truth
    window.close()


def label_rows(qtbot, window, rows_and_keys) -> None:
    """Press a key on each of these rows (as shown now: a refit may reorder them between presses)."""
    ids = [(window.model.id_at(row), key) for row, key in rows_and_keys]
    for image_id, key in ids:
        window.select_id(image_id)
        QTest.keyClick(window.view, key)


def wait_adapted(qtbot, window, n_labels: int) -> None:
    qtbot.waitUntil(lambda: window.site_state is not None and window.site_state.n_labels == n_labels
                    and window.site_job is None, timeout=20000)


def test_each_label_refits_and_the_grid_follows(qtbot, site_window):
    window, truth = site_window
    m = window.model
    names = [m.paths[k] for k in range(len(m.paths))]
    assert m.counts()["crack"] == 40  # the base model calls every brick wall cracked
    bricks = [r for r in range(m.rowCount()) if truth[m.path_at(r)] == "no_crack"]
    cracks = [r for r in range(m.rowCount()) if truth[m.path_at(r)] == "crack"]
    label_rows(qtbot, window, [(r, Qt.Key_N) for r in bricks[:4]] + [(r, Qt.Key_C) for r in cracks[:4]])
    wait_adapted(qtbot, window, 8)
    verdicts = {names[k]: ("crack" if m.probs[k] >= m.threshold else "no_crack") for k in range(len(names))}
    assert np.mean([verdicts[n] == truth[n] for n in names]) >= 0.9
    assert m.counts()["crack"] <= 24  # the counts followed the refit
    assert "Adapted" in window.sidebar.site_info.text() and "8 labels" in window.sidebar.site_info.text()
    QTest.keyClick(window.view, Qt.Key_Z, Qt.ControlModifier)  # undo the last label: 7 labels left
    wait_adapted(qtbot, window, 7)


def test_the_filter_changes_as_the_inspector_types(qtbot, site_window):
    window, truth = site_window
    window.set_filter("pred_crack")
    assert window.model.rowCount() == 40
    m = window.model
    rows = [(r, Qt.Key_N) for r in range(m.rowCount()) if truth[m.path_at(r)] == "no_crack"][:3]
    rows += [(r, Qt.Key_C) for r in range(m.rowCount()) if truth[m.path_at(r)] == "crack"][:3]
    label_rows(qtbot, window, rows)
    wait_adapted(qtbot, window, 6)
    shown = [m.path_at(r) for r in range(m.rowCount())]
    assert 20 <= len(shown) < 30  # the bricks left the "Predicted crack" filter as the head learnt
    assert sum(truth[p] == "no_crack" for p in shown) <= 3


def test_u_and_the_most_useful_sort_point_at_what_to_label_next(qtbot, site_window):
    window, truth = site_window
    qtbot.waitUntil(lambda: window.site_job is None and window.site_state is not None, timeout=20000)
    window.set_sort("useful")
    first = window.model.path_at(0)
    QTest.keyClick(window.view, Qt.Key_U)
    assert window.model.path_at(window.view.currentIndex().row()) == first
    assert window.model.label_at(0) is None
    QTest.keyClick(window.view, Qt.Key_N if truth[first] == "no_crack" else Qt.Key_C)
    wait_adapted(qtbot, window, 1)
    assert "<b>Adapted</b> on 1 label (" in window.sidebar.site_info.text()
    assert window.model.path_at(0) != first  # labelled photos sink to the end of the order
    assert window.model.label_at(window.model.rowCount() - 1) is not None


def test_each_folder_keeps_its_own_model(qtbot, tmp_path, monkeypatch):
    from factories import make_tiny_model, tiny_info

    models = tmp_path / "models"
    make_adaptable_model(models)
    make_tiny_model(models / "other.onnx", info=tiny_info(name="other"))
    monkeypatch.setenv("CRACKDESK_MODELS_DIR", str(models))
    window = open_window(qtbot, tmp_path / "s.ini")
    brick_site(tmp_path / "a", count=4)
    brick_site(tmp_path / "b", count=4, seed=5)
    load_folder(qtbot, window, tmp_path / "a")
    window.set_model(window.registry.find("other"))
    load_folder(qtbot, window, tmp_path / "b")
    assert window.entry.info.name != "other"  # a model chosen in one folder does not follow into another
    load_folder(qtbot, window, tmp_path / "a")
    assert window.entry.info.name == "other"  # ... and the folder remembers its own
    window.close()


def test_export_site_model_from_the_window_adds_it_to_the_models(qtbot, site_window, tmp_path):
    from crackdesk.ui.models_dialog import describe_model
    from crackdesk.ui.site_actions import export_site_model_action

    window, truth = site_window
    m = window.model
    label_rows(qtbot, window, [(r, Qt.Key_N if truth[m.path_at(r)] == "no_crack" else Qt.Key_C) for r in range(6)])
    wait_adapted(qtbot, window, 6)
    export_site_model_action(window, str(tmp_path / "bricks.onnx"), add=True)
    qtbot.waitUntil(lambda: hasattr(window, "last_site_export"), timeout=20000)
    entry = window.registry.find(window.last_site_export.name)
    assert entry.source == "user" and entry.memory.is_file()
    text = describe_model(entry)
    assert "adapted from tinyf@0.1 to the site" in text and "6 labels" in text


@pytest.fixture
def camera_window(qtbot, tmp_path, monkeypatch):
    """The window on a classified folder of large photos (tests/test_site_photos.py's camera site)."""
    from test_site_photos import camera_site

    models = tmp_path / "models"
    make_adaptable_model(models)
    monkeypatch.setenv("CRACKDESK_MODELS_DIR", str(models))
    window = open_window(qtbot, tmp_path / "settings.ini")
    truth = camera_site(tmp_path / "site")
    load_folder(qtbot, window, tmp_path / "site")
    classify_all(qtbot, window)
    yield window, truth
    window.close()


def test_camera_photos_follow_the_site_head_in_the_grid_and_the_viewer(qtbot, camera_window):
    """Large photos (decision 38): whole-photo labels refit the head, the other photos' verdicts change in the
    grid, and the viewer's heatmap shows the windows as the head scores them."""
    window, truth = camera_window
    m = window.model
    assert m.counts()["crack"] == 12  # every brick wall photo is a false alarm, in all four windows
    bricks = [r for r in range(m.rowCount()) if truth[m.path_at(r)] == "no_crack"]
    cracks = [r for r in range(m.rowCount()) if truth[m.path_at(r)] == "crack"]
    label_rows(qtbot, window, [(r, Qt.Key_N) for r in bricks[:2]] + [(r, Qt.Key_C) for r in cracks[:1]])
    wait_adapted(qtbot, window, 3)
    verdicts = {m.path_at(r): m.predicted_at(r) for r in range(m.rowCount())}
    assert all(verdicts[n] == t for n, t in truth.items()), verdicts
    assert "3 labels" in window.sidebar.site_info.text()
    assert "3 labelled large photos teach the site head through" in window.sidebar.site_info.text()
    window.set_sort("useful")  # large photos are ranked too: U goes to an unlabelled one
    QTest.keyClick(window.view, Qt.Key_U)
    picks, _ = window.session.adapter().suggestions(state=window.site_state)
    assert window.current_id() == int(window.session.adapter().ids[picks[0].index])  # the first suggestion
    assert m.label_at(window.view.currentIndex().row()) is None
    row = next(r for r in range(m.rowCount()) if truth[m.path_at(r)] == "no_crack" and m.label_at(r) is None)
    window.select_row(row)
    QTest.keyClick(window.view, Qt.Key_Return)
    viewer = window.viewer
    qtbot.waitUntil(lambda: viewer.heat.item is not None, timeout=5000)
    assert len(viewer.heat.item.tiles) == 4 and all(p < 0.5 for *_, p in viewer.heat.item.tiles)
    assert "no tile >= 0.5" in viewer.prediction.text()
    viewer.close()


def test_the_sidebar_offers_to_classify_again_photos_whose_windows_it_cannot_rescore(qtbot, camera_window):
    """Windows without features (settled by a screening model, or an older CrackDesk's classification): the note
    says so, and its link classifies those photos again, and only those, after which every photo follows the
    head."""
    window, truth = camera_window
    m = window.model
    rows = [r for r in range(m.rowCount()) if truth[m.path_at(r)] == "no_crack"][:2]
    rows += [r for r in range(m.rowCount()) if truth[m.path_at(r)] == "crack"][:1]
    others = [r for r in range(m.rowCount()) if r not in rows][:2]  # two more photos keep every window's features
    keep = [window.ws.hash_of(int(m.ids[m.image_index(r)])) for r in rows + others]
    window.ws._write(lambda db: db.execute(f"DELETE FROM window_features WHERE hash NOT IN ({','.join('?' * 5)})",
                                           keep))
    label_rows(qtbot, window, [(r, Qt.Key_N) for r in rows[:2]] + [(rows[2], Qt.Key_C)])
    qtbot.waitUntil(lambda: window.site_job is None and window.site_state is not None
                    and any("cannot rescore" in n for n in window.site_state.notes), timeout=20000)
    assert "Classify these 7 photos again" in window.sidebar.site_info.text()
    with qtbot.waitSignal(window.classify_finished, timeout=30000) as finished:
        window.sidebar.site_info.linkActivated.emit("classify")
    assert finished.args[0].classified == 7  # not the 5 whose windows all have features
    wait_adapted(qtbot, window, 3)
    qtbot.waitUntil(lambda: window.site_job is None and not any("cannot rescore" in n for n in window.site_state.notes),
                    timeout=20000)
    verdicts = {m.path_at(r): m.predicted_at(r) for r in range(m.rowCount())}
    assert all(verdicts[n] == t for n, t in truth.items()), verdicts
    assert "photos again" not in window.sidebar.site_info.text()


def test_a_label_given_while_classifying_runs_every_window_of_the_photos_after_it(qtbot, tmp_path, monkeypatch):
    """A new folder's first pass screens windows (fast); the first label switches the running classification to
    every window, with a status bar note saying why it got slower (core: tests/test_site_screen.py)."""
    import time

    from factories import make_tiny_model, tiny_info
    from test_tiling import grid_mosaic

    from crackdesk.core import pipeline

    models = tmp_path / "models"
    models.mkdir()
    make_tiny_model(models / "screen.onnx", 16, tiny_info(16, name="screen", version="1"))
    make_adaptable_model(models, name="mobilenetv2-int8", screen={"model": "screen@1", "below": 0.3})  # the default
    monkeypatch.setenv("CRACKDESK_MODELS_DIR", str(models))
    real_cut = pipeline.cut_photo
    monkeypatch.setattr(pipeline, "cut_photo", lambda *a, **k: time.sleep(0.1) or real_cut(*a, **k))  # camera-slow
    folder = tmp_path / "site"
    folder.mkdir()
    for i in range(30):
        grid_mosaic(np.zeros((2, 3), bool), seed=7 * i).save(folder / f"photo{i:02d}.png")
    window = open_window(qtbot, tmp_path / "settings.ini")
    try:
        load_folder(qtbot, window, folder)
        m = window.model
        with qtbot.waitSignal(window.classify_finished, timeout=60000):
            window.classify("all")
            qtbot.waitUntil(lambda: (~np.isnan(m.probs)).sum() >= 3, timeout=20000)
            early = np.flatnonzero(~np.isnan(m.probs))
            first = int(early[0])
            window.select_id(int(m.ids[first]))
            QTest.keyClick(window.view, Qt.Key_N)
            qtbot.waitUntil(lambda: "Labels adapt the model" in window.statusBar().currentMessage(), timeout=20000)
        ws, key = window.session.workspace, window.entry.key
        last = int(m.ids[list(m.paths).index("photo29.png")])
        assert ws.window_feature_count(key, [last]) == 6  # read after the label: every window ran
        assert ws.window_feature_count(key, [int(m.ids[first])]) == 6  # labelled: classified again at its refit
        assert min(ws.window_feature_count(key, [int(m.ids[k])]) for k in early[1:]) < 6  # the screen's, unlabelled
    finally:
        window.close()


def test_the_shipped_default_adapts_camera_photos_through_their_projected_windows(qtbot, tmp_path):
    """The app's own model (`mobilenetv2-int8`, whose memory holds a window basis, decision 48) on photos large
    enough to be judged by their windows: classified in the window, they are stored projected, and a label on one
    photo adapts the others' verdicts and heatmap windows."""
    from test_site_photos import camera_site

    from crackdesk.core import features as codec
    from crackdesk.core.memory import memory_path
    from crackdesk.core.projection import load_projection

    window = open_window(qtbot, tmp_path / "settings.ini")
    truth = camera_site(tmp_path / "site", count=6)
    load_folder(qtbot, window, tmp_path / "site")
    classify_all(qtbot, window)
    session = window.session
    projection = load_projection(memory_path(session.entry.path))
    assert session.entry.key.startswith("mobilenetv2-int8") and projection is not None
    stored = list(session.workspace.window_features(session.entry.key))
    assert len(stored) == len(truth) and all(codec.decode_matrix(b)[3] == projection.fingerprint for *_, b in stored)
    m = window.model
    before = list(m.probs)
    label_rows(qtbot, window, [(0, Qt.Key_N if truth[m.path_at(0)] == "no_crack" else Qt.Key_C)])
    wait_adapted(qtbot, window, 1)
    assert window.site_state.adapted and "Adapted" in window.sidebar.site_info.text()
    assert list(m.probs) != before  # every photo's verdict now comes from its windows under the site head
    adapter = session.adapter()
    adapted = dict(zip(adapter.ids.tolist(), adapter.probabilities(window.site_state)))
    np.testing.assert_allclose(m.probs, [adapted[i] for i in m.ids.tolist()], atol=1e-6)  # what the grid shows
    assert adapter.window_grid(m.id_at(1), window.site_state).shape == (2, 2)  # the heatmap's windows
    window.close()

"""A screened first pass and the site head: windows a screening model settled have no features, so the head cannot
rescore them; once the folder has labels, even labels given while a classification runs, every window of the
photos read from then on runs through the model."""

from __future__ import annotations

import numpy as np
from factories import make_adaptable_model, make_tiny_model, tiny_info
from test_tiling import grid_mosaic

from crackdesk.core.models import ModelRegistry
from crackdesk.core.session import FolderSession

PHOTOS = 16


def screened_folder(tmp_path):
    """2 x 3 window mosaics, plain (the screen settles every window) and every fourth with a crack, and an
    adaptable model screened by a cheaper one beside it."""
    models = tmp_path / "models"
    models.mkdir()
    make_tiny_model(models / "screen.onnx", 16, tiny_info(16, name="screen", version="1"))
    model = make_adaptable_model(models, screen={"model": "screen@1", "below": 0.3})
    folder = tmp_path / "site"
    folder.mkdir()
    for i in range(PHOTOS):
        cracked = np.zeros((2, 3), bool)
        cracked[1, 1] = i % 4 == 3  # a crack the screen lets through to the model
        grid_mosaic(cracked, seed=7 * i).save(folder / f"photo{i:02d}.png")
    session = FolderSession.open(folder)
    session.use_model(ModelRegistry(models, tmp_path / "user").find(str(model)))
    return session


def featured_windows(prediction) -> int:
    return 0 if prediction.window_features is None else len(prediction.window_features[0])


def test_labels_given_while_classifying_stop_the_screen_for_the_photos_read_after_them(tmp_path):
    session = screened_folder(tmp_path)
    with session:
        classifier = session.classifier(session.entry.path)
        assert classifier.screen is not None  # no labels yet: the fast first pass
        assert session.unscreen_for_labels() == ""  # nothing runs
        ids = [r.id for r in session.rows()]
        notes, featured = [], {}

        def on_batch(pairs, done, total):
            featured.update({image_id: featured_windows(p) for image_id, p in pairs})
            if not notes:  # the inspector labels the first photo shown; its refit asks for the switch
                assert session.unscreen_for_labels() == ""  # still no label
                session.workspace.set_labels({pairs[0][0]: "no_crack"})
                notes.append(session.unscreen_for_labels())
                assert session.unscreen_for_labels() == ""  # once

        report = session.classify(classifier, on_batch=on_batch)
        assert report.classified == PHOTOS and report.tiled == PHOTOS
    assert notes[0] == "Labels adapt the model: the rest of this run checks every window of large photos (slower)"
    assert classifier.screen is None and "unscreened" in classifier.screen_note
    assert featured[ids[0]] < 6  # screened: some of its windows were settled without features
    assert featured[ids[-1]] == 6  # read after the label: every window ran, so the head rescores it whole


def test_a_screened_model_without_features_keeps_its_screen_even_with_labels(tmp_path):
    """It cannot adapt, so nothing would rescore the windows the screen let go of."""
    models = tmp_path / "models"
    models.mkdir()
    make_tiny_model(models / "screen.onnx", 16, tiny_info(16, name="screen", version="1"))
    model = make_tiny_model(models / "main.onnx", 32, tiny_info(32, name="main", version="1",
                                                                 screen={"model": "screen@1", "below": 0.3}))
    folder = tmp_path / "site"
    folder.mkdir()
    grid_mosaic(np.zeros((2, 3), bool), seed=1).save(folder / "a.png")
    with FolderSession.open(folder) as session:
        session.use_model(ModelRegistry(models, tmp_path / "user").find(str(model)))
        session.workspace.set_labels({session.rows()[0].id: "no_crack"})
        classifier = session.classifier(session.entry.path)
        assert classifier.screen is not None
        seen = []
        session.classify(classifier, on_batch=lambda pairs, done, total: seen.append(session.unscreen_for_labels()))
        assert seen == [""] and classifier.screen is not None


def test_a_label_on_a_photo_the_screen_settled_whole_teaches_once_its_windows_are_run(tmp_path, monkeypatch):
    """Such a photo has no window with features, so its label taught nothing and the sidebar counted one label
    fewer than the inspector gave. The refit classifies it again, every window, reading back its windows alone and
    writing their codes into the matrix's spare rows (decision 43)."""
    from test_site_photo_merge import window_reads

    session = screened_folder(tmp_path)
    with session:
        session.classify(session.classifier(session.entry.path))  # no labels yet: screened
        session.adapt()
        adapter = session.adapter()
        bare = adapter.photos._features_per_photo() == 0
        assert bare.any() and not bare.all()
        bare_ids = adapter.ids[adapter.photos.rows[bare]].tolist()
        featured_id = int(adapter.ids[adapter.photos.rows[~bare][0]])
        before = adapter.photos.features
        reads = window_reads(monkeypatch, session.workspace)
        session.workspace.set_labels({bare_ids[0]: "no_crack", featured_id: "no_crack"})
        state = session.adapt()
        assert state.adapted and state.n_labels == 2  # both count
        assert reads == [[bare_ids[0]]]  # its windows alone, not the folder's
        assert not any("no window the model ran" in n for n in state.notes), state.notes
        k = adapter.photos.index_of([adapter._index.positions(np.array([bare_ids[0]]))[0]])[0]
        assert adapter.photos.rescorable()[k]  # every window of it has features now
        assert np.shares_memory(adapter.photos.features.codes, before.codes)  # appended, not copied
        again = session.adapt()  # the next refit: nothing more to classify
        assert reads == [[bare_ids[0]]] and again.n_labels == 2

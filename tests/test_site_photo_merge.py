"""Large photos classified after the site adapter read the folder (decision 41): their windows are read alone and
merged into the loaded photos, the window codes written into the matrix's spare rows, with the same result as
reading the whole folder again."""

from __future__ import annotations

import numpy as np
from factories import make_adaptable_model
from test_site_photos import camera_site, open_classified

from crackdesk.core.inference import Classifier
from crackdesk.core.models import ModelRegistry
from crackdesk.core.session import FolderSession
from crackdesk.core.site_photos import LargePhotos
from crackdesk.core.sitehead import Head


def window_reads(monkeypatch, workspace) -> list:
    """Records which images each read of large photos' windows asked for (None: the whole folder)."""
    reads = []
    original = type(workspace).window_probabilities

    def spy(self, model_key, image_ids=None):
        reads.append(None if image_ids is None else sorted(image_ids))
        return original(self, model_key, image_ids)

    monkeypatch.setattr(type(workspace), "window_probabilities", spy)
    return reads


def test_a_photo_classified_at_the_refit_is_read_alone_and_merged_like_a_full_read(tmp_path, monkeypatch):
    """A large photo labelled before it was classified is classified at the refit; only its windows are read back
    (the folder's took seconds at 2,000 photos, on the label's own refit), and the adapter then holds what reading
    the whole folder would give."""
    model = make_adaptable_model(tmp_path / "models")
    truth = camera_site(tmp_path / "site")
    with FolderSession.open(tmp_path / "site") as session:
        session.use_model(ModelRegistry(tmp_path / "models", tmp_path / "user").find(str(model)))
        rows = session.rows()
        late = [r for r in rows if truth[r.path] == "crack"][2]  # not classified with the others
        session.classify(Classifier(session.entry.path), [(r.id, r.path) for r in rows if r.id != late.id])
        bricks = [r for r in rows if truth[r.path] == "no_crack"][:2]
        session.workspace.set_labels({bricks[0].id: "no_crack", bricks[1].id: "no_crack"})
        session.adapt()
        adapter = session.adapter()
        assert len(adapter.photos) == len(rows) - 1
        reads = window_reads(monkeypatch, session.workspace)
        session.workspace.set_labels({late.id: "crack"})
        state = session.adapt()
        assert state.adapted and state.n_labels == 3
        assert reads == [[late.id]]  # that photo's windows, not the folder's
        merged = adapter.photos
        full = LargePhotos.load(session.workspace, session.entry.key, adapter._index.positions, merged.features.dim)
        assert len(merged) == len(full) == len(rows)
        head = state.head
        other = Head(head.weights * 0.5, head.bias + 1.0, head.threshold)
        for r in rows:
            row = int(adapter._index.positions(np.array([r.id]))[0])
            for h in (head, other):
                assert np.allclose(merged.grid(row, h), full.grid(row, h)), r.path
        assert merged.rescorable().sum() == full.rescorable().sum() == len(rows)
        order = np.argsort(merged.rows), np.argsort(full.rows)
        assert np.allclose(merged.verdicts(other)[order[0]], full.verdicts(other)[order[1]])
        # A photo in the middle read again: the photos after it move down, their features with them
        middle = rows[len(rows) // 2]
        at = adapter._index.positions(np.array([middle.id]))
        again = full.merged(LargePhotos.load(session.workspace, session.entry.key, adapter._index.positions,
                                             full.features.dim, image_ids=[middle.id]), at)
        assert len(again) == len(full) and len(again.features) == len(full.features)
        for r in rows:
            row = int(adapter._index.positions(np.array([r.id]))[0])
            assert np.allclose(again.grid(row, other), full.grid(row, other)), r.path


def test_appending_to_a_feature_matrix_uses_its_room_and_never_writes_under_an_older_one():
    from crackdesk.core.feature_matrix import FeatureMatrix

    a = FeatureMatrix(3, 4, spare=5)
    a.codes[:] = 1
    more = FeatureMatrix(2, 4)
    more.codes[:] = 2
    b = a.appended(more)
    assert np.shares_memory(a.codes, b.codes) and len(a) == 3  # written into a's room, a itself unchanged
    assert b.codes.tolist() == [[1] * 4] * 3 + [[2] * 4] * 2
    third = FeatureMatrix(1, 4)
    third.codes[:] = 3
    c = a.appended(third)  # a is no longer the newest: b owns those rows now, so a copy
    assert not np.shares_memory(c.codes, b.codes)
    assert b.codes[3:].tolist() == [[2] * 4] * 2 and c.codes.tolist() == [[1] * 4] * 3 + [[3] * 4]
    d = b.appended(FeatureMatrix(10, 4))  # more than its room: a copy, with room of its own
    assert len(d) == 15 and d.codes[:5].tolist() == b.codes.tolist() and not np.shares_memory(d.codes, b.codes)
    e = d.appended(third)
    assert np.shares_memory(d.codes, e.codes) and e.codes[15].tolist() == [3] * 4


def test_classifying_a_few_photos_again_merges_their_windows_instead_of_rereading_the_folder(tmp_path,
                                                                                             monkeypatch):
    session, truth, ids = open_classified(tmp_path)
    with session:
        names = sorted(truth)
        session.workspace.set_labels({ids[names[0]]: truth[names[0]], ids[names[1]]: truth[names[1]]})
        state = session.adapt()
        adapter = session.adapter()
        reads = window_reads(monkeypatch, session.workspace)
        again = sorted([ids[names[4]], ids[names[7]]])
        session.classify(session.classifier(session.entry.path), [(i, p) for p, i in ids.items() if i in again])
        assert reads == [again] and not adapter.features_stale
        session.workspace.set_labels({ids[names[2]]: truth[names[2]]})
        state = session.adapt()
        assert reads == [again]  # the refit read nothing more
        full = LargePhotos.load(session.workspace, session.entry.key, adapter._index.positions,
                                adapter.photos.features.dim)
        merged = adapter.photos
        order = np.argsort(merged.rows), np.argsort(full.rows)
        assert np.allclose(merged.verdicts(state.head)[order[0]], full.verdicts(state.head)[order[1]])

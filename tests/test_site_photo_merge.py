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
        # A photo in the middle read again: the photos after it move down, their features with them; its old
        # feature rows stay in the matrix, unused, so the folder's codes are not copied
        middle = rows[len(rows) // 2]
        at = adapter._index.positions(np.array([middle.id]))
        again = full.merged(LargePhotos.load(session.workspace, session.entry.key, adapter._index.positions,
                                             full.features.dim, image_ids=[middle.id]), at)
        assert len(again) == len(full) and len(again.features) == len(full.features) + 4  # 2 x 2 windows
        assert np.shares_memory(again.features.codes, full.features.codes)
        assert again.rescorable().sum() == len(rows)
        for r in rows:
            row = int(adapter._index.positions(np.array([r.id]))[0])
            assert np.allclose(again.grid(row, other), full.grid(row, other)), r.path
        assert_same_photos(again, full, other)


def assert_same_photos(merged: LargePhotos, full: LargePhotos, head) -> None:
    """Merged photos judge and rank every photo as the photos read whole do."""
    order = np.argsort(merged.rows), np.argsort(full.rows)
    assert np.array_equal(merged.rows[order[0]], full.rows[order[1]])
    assert np.allclose(merged.verdicts(head)[order[0]], full.verdicts(head)[order[1]])
    assert np.allclose(merged.verdict_logits(head, order[0])[:5], full.verdict_logits(head, order[1])[:5])
    (logits, strongest), (full_logits, full_strongest) = merged.for_review(head), full.for_review(head)
    assert np.allclose(logits[order[0]], full_logits[order[1]])
    assert np.allclose(merged.features.rows(strongest[order[0]]), full.features.rows(full_strongest[order[1]]))


def test_photos_read_again_leave_their_rows_unused_until_an_eighth_then_the_rest_is_copied_once(tmp_path):
    """Replacing a photo that had features used to copy the folder's window codes (566 MB at 2,000 camera photos:
    0.2-2.6 s under the adapter's lock, and twice the memory); its rows are now left unused, up to an eighth of
    the matrix, and then the rows in use are copied once, with room to grow again."""
    session, truth, ids = open_classified(tmp_path)
    with session:
        session.adapt()
        adapter = session.adapter()
        photos = adapter.photos
        full = LargePhotos.load(session.workspace, session.entry.key, adapter._index.positions, photos.features.dim)
        head = Head(adapter.base.weights * 0.5, adapter.base.bias + 1.0, adapter.base.threshold)
        names = sorted(truth)
        sizes, copied = [], []
        for name in names[3:6]:
            before = adapter.photos.features.codes
            adapter.refresh_photos([ids[name]])
            sizes.append(len(adapter.photos.features))
            copied.append(not np.shares_memory(adapter.photos.features.codes, before))
            assert_same_photos(adapter.photos, full, head)
        windows = len(full.features)  # 48: 12 photos of 2 x 2
        assert sizes[0] == windows + 4 and not copied[0]  # its 4 old rows unused, the new ones appended
        assert sizes[1] == windows and copied[1]  # 8 of 56 rows unused, more than an eighth: the 48 in use copied
        assert sizes[2] == windows + 4 and not copied[2]  # and the copy has room: appended in place again
        assert (adapter.photos.feature_photo >= 0).sum() == windows


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


def test_up_to_a_quarter_of_the_folder_classified_again_is_merged_more_is_read_at_the_next_refit(tmp_path,
                                                                                                  monkeypatch):
    """Merges copy nothing now (decision 44): merging a quarter of the folder costs less than reading it whole at
    the next refit, which a label waits for (2,000 camera photos: 0.4-0.7 s for 500 against 1.9-2.8 s)."""
    from crackdesk.core import session as session_module

    monkeypatch.setattr(session_module, "REFRESH_AT_MOST", 1)
    session, truth, ids = open_classified(tmp_path)  # 12 photos
    with session:
        names = sorted(truth)
        session.workspace.set_labels({ids[names[0]]: truth[names[0]]})
        session.adapt()
        adapter = session.adapter()
        reads = window_reads(monkeypatch, session.workspace)
        classifier = session.classifier(session.entry.path)
        quarter = sorted(ids[n] for n in names[2:5])
        session.classify(classifier, [(i, p) for p, i in ids.items() if i in quarter])
        assert reads == [quarter] and not adapter.features_stale  # merged at once
        more = sorted(ids[n] for n in names[5:9])
        session.classify(classifier, [(i, p) for p, i in ids.items() if i in more])
        assert reads == [quarter] and adapter.features_stale  # the folder is read again at the next refit

"""Site adaptation of large photos (decision 38), with real ONNX models, real workspaces and real classification:
a whole-photo label teaches the site head through the photo's windows, and every large photo's verdict (and its
heatmap's windows) follows the site head like a small image's P does.

The site: brick walls photographed whole (454 px, 2 x 2 windows). Their mortar joints are dark lines, which the
tiny contrast model calls cracks in every window; the real cracks are dark diagonals on the same red surface."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from factories import make_adaptable_model
from PIL import Image
from test_site import brick_site

from crackdesk.core.inference import Classifier
from crackdesk.core.models import ModelRegistry
from crackdesk.core.session import FolderSession


def camera_site(folder, count: int = 12) -> dict[str, str]:
    """Large photos: the brick site's images enlarged to 454 x 454 (two 227-px windows a side)."""
    truth = brick_site(folder, count=count)
    for name in list(truth):
        path = folder / name
        Image.open(path).resize((454, 454), Image.NEAREST).save(path)
    return truth


def open_classified(tmp_path):
    model = make_adaptable_model(tmp_path / "models")
    truth = camera_site(tmp_path / "site")
    session = FolderSession.open(tmp_path / "site")
    entry = ModelRegistry(tmp_path / "models", tmp_path / "user").find(str(model))
    session.use_model(entry)
    report = session.classify(Classifier(entry.path))
    assert report.tiled == len(truth)
    return session, truth, {r.path: r.id for r in session.rows()}


def verdicts(session, adapt: bool = True) -> dict[str, str]:
    current = session.current_predictions(adapt=adapt)
    return {r.path: current.predicted(i) for i, r in enumerate(current.rows)}


def test_photo_labels_adapt_the_verdicts_of_the_other_large_photos(tmp_path):
    session, truth, ids = open_classified(tmp_path)
    with session:
        base = verdicts(session, adapt=False)
        bricks = sorted(n for n, t in truth.items() if t == "no_crack")
        cracks = sorted(n for n, t in truth.items() if t == "crack")
        assert all(base[n] == "crack" for n in bricks)  # the joints are false alarms in every window
        assert all(base[n] == "crack" for n in cracks)
        stored = session.workspace.labelled_features(session.entry.key)
        assert not stored.found and not stored.missing  # nothing labelled yet

        session.workspace.set_labels({ids[bricks[0]]: "no_crack", ids[bricks[1]]: "no_crack",
                                      ids[cracks[0]]: "crack"})
        state = session.adapt()
        assert state.adapted and state.n_labels == 3 and state.n_crack == 1  # photos count once, not per window
        assert any("3 labelled large photos teach the site head through" in n for n in state.notes)
        labelled = session.workspace.labelled_features(session.entry.key)
        assert not labelled.missing and not labelled.photos_unused  # nothing re-classified at the next refit
        assert all("@" in key for key, _, _ in labelled.found)

        adapted = verdicts(session)
        assert all(adapted[n] == "no_crack" for n in bricks[2:]), adapted
        assert all(adapted[n] == "crack" for n in cracks[1:]), adapted
        grid = session.adapter().window_grid(ids[bricks[3]])
        assert grid.shape == (2, 2) and (grid < 0.5).all()
        base_grid = np.array([p for *_, p in session.workspace.tile_results(
            session.workspace.hash_of(ids[bricks[3]]), session.entry.key)]).reshape(2, 2)
        assert (base_grid >= 0.5).all()  # the stored tiles stay the base model's

        session.workspace.set_labels({ids[bricks[0]]: None, ids[bricks[1]]: None, ids[cracks[0]]: None})
        assert not session.adapt().adapted
        assert verdicts(session) == base  # no labels: the base model's verdicts again


def test_a_large_photo_labelled_before_classification_is_classified_once(tmp_path):
    model = make_adaptable_model(tmp_path / "models")
    truth = camera_site(tmp_path / "site", count=4)
    with FolderSession.open(tmp_path / "site") as session:
        session.use_model(ModelRegistry(tmp_path / "models", tmp_path / "user").find(str(model)))
        ids = {r.path: r.id for r in session.rows()}
        brick = next(n for n, t in truth.items() if t == "no_crack")
        session.workspace.set_labels({ids[brick]: "no_crack"})
        state = session.adapt()
        assert state.adapted and state.n_labels == 1
        digest = session.workspace.hash_of(ids[brick])
        assert len(session.workspace.tile_results(digest, session.entry.key)) == 4  # classified by its windows
        labelled = session.workspace.labelled_features(session.entry.key)
        assert not labelled.missing and len(labelled.found) == 4


def test_a_crack_label_teaches_the_likeliest_window_when_the_model_saw_no_crack(tmp_path):
    model = make_adaptable_model(tmp_path / "models")
    folder = tmp_path / "site"
    folder.mkdir()
    plain = (np.full((454, 454, 3), 170) * [1.2, 0.85, 0.8]).astype(np.uint8)
    plain[300:310, 300:310] = 128  # a faint mark in the bottom-right window: P low everywhere, highest there
    Image.fromarray(plain).save(folder / "faint.png")
    with FolderSession.open(folder) as session:
        session.use_model(ModelRegistry(tmp_path / "models", tmp_path / "user").find(str(model)))
        session.classify(Classifier(session.entry.path))
        image_id = session.rows()[0].id
        tiles = session.workspace.tile_results(session.workspace.hash_of(image_id), session.entry.key)
        assert max(p for *_, p in tiles) < 0.5
        session.workspace.set_labels({image_id: "crack"})
        state = session.adapt()
        assert state.adapted and state.n_labels == 1 and state.n_crack == 1
        (key, label, _), = session.workspace.labelled_features(session.entry.key).found
        assert key.endswith("@227,227,227,227") and label == "crack"


def test_a_labelled_photo_without_window_features_is_classified_again_and_teaches(tmp_path):
    """Windows settled by a screening model (or classified by an older CrackDesk) have no features: the refit
    classifies a labelled photo again, every window, so its label counts (decision 43); one it cannot read is
    named in a note."""
    session, truth, ids = open_classified(tmp_path)
    with session:
        session.workspace._write(lambda db: db.execute("DELETE FROM window_features"))
        crack = sorted(n for n, t in truth.items() if t == "crack")
        gone = sorted(truth)[0]
        session.workspace.set_labels({ids[crack[0]]: "crack", ids[sorted(truth)[2]]: "no_crack", ids[gone]: "no_crack"})
        (tmp_path / "site" / gone).unlink()  # moved away since the folder was scanned
        state = session.adapt()
        assert state.adapted and state.n_labels == 2
        assert any(n.startswith(f"{gone}: ") and n.endswith("(its label is not used)") for n in state.notes)
        assert any(n.startswith(f"1 labelled large photo has no window the model ran ({gone};") for n in state.notes)
        assert any(n.startswith("10 large photos have windows the site head cannot rescore") for n in state.notes)
        classifier = session.classifier(session.entry.path)
        assert classifier.screen is None  # the tiny model has none: nothing to turn off


def test_the_window_feature_matrix_codec_round_trips_and_refuses_damage():
    import pytest

    from crackdesk.core import features as codec

    rng = np.random.default_rng(0)
    vectors = np.concatenate([rng.random((5, 64)) * 6, rng.normal(0, 2, (3, 64)), np.zeros((1, 64))]).astype(np.float32)
    codes, scale, offset, basis = codec.decode_matrix(codec.encode_matrix(vectors))
    assert basis is None  # stored whole: no projection given
    back = codes.astype(np.float32) * scale[:, None] + offset[:, None]
    step = (vectors.max(axis=1) - np.minimum(vectors.min(axis=1), 0)) / 255
    assert (np.abs(back - vectors) <= step[:, None] / 2 + 1e-5).all()
    assert (offset[:5] == 0).all()  # non-negative rows as `encode` stores them
    one = codec.decode(codec.encode(vectors[0]))
    assert np.abs(back[0] - one).max() <= step[0] + 1e-5
    blob = codec.encode_matrix(vectors)
    for damaged in (blob[:-1], blob[:8], np.array([1, 1 << 20, 1 << 12], np.int32).tobytes() + blob[12:],
                    np.array([1, -1, 64], np.int32).tobytes()):
        with pytest.raises(ValueError):
            codec.decode_matrix(damaged)
    with pytest.raises(ValueError):
        codec.encode_matrix(np.full((2, 3), np.nan, np.float32))


def test_window_features_of_another_grid_are_not_used(tmp_path):
    """A photo whose windows were stored again on another grid (e.g. a heatmap at another stride) keeps the
    base model's P under the site head instead of features that belong to other windows."""
    session, truth, ids = open_classified(tmp_path)
    with session:
        brick = sorted(n for n, t in truth.items() if t == "no_crack")
        digest = session.workspace.hash_of(ids[brick[5]])
        nine = [(x, y, 151, 151, 0.9) for y in (0, 151, 303) for x in (0, 151, 303)]
        session.workspace.set_tile_results(digest, session.entry.key, nine)
        session.workspace.set_labels({ids[brick[0]]: "no_crack", ids[brick[1]]: "no_crack"})
        state = session.adapt()
        assert any(n.startswith("1 large photo has windows the site head cannot rescore") for n in state.notes), state.notes
        adapted = verdicts(session)
        assert adapted[brick[5]] == "crack" and adapted[brick[4]] == "no_crack"
        assert session.adapter().window_grid(ids[brick[5]]).shape == (3, 3)


def test_the_command_line_adapts_camera_photos_and_suggests_among_them(tmp_path):
    import csv

    from processes import run_cli

    model = make_adaptable_model(tmp_path / "models")
    truth = camera_site(tmp_path / "site")
    assert run_cli("classify", tmp_path / "site", "--model", model).returncode == 0
    bricks = sorted(n for n, t in truth.items() if t == "no_crack")
    cracks = sorted(n for n, t in truth.items() if t == "crack")
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\n" + f"{bricks[0]},no_crack\n{bricks[1]},no_crack\n{cracks[0]},crack\n")
    assert run_cli("labels", "import", tmp_path / "site", labels).returncode == 0
    out = tmp_path / "out.csv"
    result = run_cli("classify", tmp_path / "site", "--csv", out)
    assert result.returncode == 0, result.stderr
    assert "site-adapted on 3 labels" in result.stderr
    assert {Path(r["path"]).name: r["label"] for r in csv.DictReader(out.open())} == truth
    assert "note: 3 labelled large photos teach the site head through" in result.stderr
    suggest = run_cli("suggest", tmp_path / "site", "-n", "4", "--csv", tmp_path / "next.csv")
    assert suggest.returncode == 0, suggest.stderr
    picked = [r["path"] for r in csv.DictReader((tmp_path / "next.csv").open())]
    assert len(set(picked)) == 4 and not set(picked) & {bricks[0], bricks[1], cracks[0]}  # large photos, unlabelled
    assert "4 suggestions" in suggest.stderr and "cannot be suggested" not in suggest.stderr


def test_the_report_draws_a_finding_s_windows_as_its_adapted_verdict_has_them(tmp_path, monkeypatch):
    import crackdesk.report.pictures as pictures
    from crackdesk.report.build import build_report

    session, truth, ids = open_classified(tmp_path)
    drawn = {}
    real = pictures.finding_picture

    def spy(path, rows, threshold):
        drawn[path.name] = [p for *_, p in rows]
        return real(path, rows, threshold)

    monkeypatch.setattr(pictures, "finding_picture", spy)
    with session:
        bricks = sorted(n for n, t in truth.items() if t == "no_crack")
        cracks = sorted(n for n, t in truth.items() if t == "crack")
        session.workspace.set_labels({ids[bricks[0]]: "no_crack", ids[bricks[1]]: "no_crack",
                                      ids[cracks[0]]: "crack"})
        assert build_report(session, session.entry.info, tmp_path / "report") is not None
        state = session.adapter().state
        expected = {n: session.adapter().window_grid(ids[n], state).ravel().tolist() for n in cracks}
        base = {n: [p for *_, p in session.workspace.tile_results(session.workspace.hash_of(ids[n]),
                                                                  session.entry.key)] for n in cracks}
    assert set(drawn) == set(cracks)  # the bricks are no longer findings
    for name in cracks:
        assert drawn[name] == pytest.approx(expected[name])
        assert drawn[name] != pytest.approx(base[name], abs=1e-3)  # the head's P, not the stored base P


def test_a_photo_s_verdict_while_classifying_is_the_one_the_adapter_gives_afterwards(tmp_path):
    """The GUI shows each classified batch under the current head (photo_p_under) before the refit that re-reads
    the folder: both must give a photo the same P."""
    from crackdesk.core.site_photos import photo_p_under

    session, truth, ids = open_classified(tmp_path)
    with session:
        bricks = sorted(n for n, t in truth.items() if t == "no_crack")
        session.workspace.set_labels({ids[bricks[0]]: "no_crack", ids[sorted(truth)[1]]: "crack"})
        state = session.adapt()
        after = session.adapter().probabilities(state)
        rows = {int(i): k for k, i in enumerate(session.adapter().ids)}
        predictions = [p for batch in session.classifier(session.entry.path).classify(
            [tmp_path / "site" / n for n in sorted(truth)]) for p in batch]
        live = {sorted(truth)[p.index]: photo_p_under(state.head, p.tiles, p.window_features) for p in predictions}
    assert all(p.window_features is not None and p.window_features[0].tolist() == [0, 1, 2, 3] for p in predictions)
    for name, p in live.items():
        assert p == pytest.approx(after[rows[ids[name]]], abs=0.03)  # stored features are rounded to 8 bits
        assert (p >= 0.5) == (after[rows[ids[name]]] >= 0.5)
    assert sum(p < 0.5 for p in live.values()) >= 5  # the bricks, adapted


def test_a_folder_classified_before_windows_kept_features_adapts_once_classified_again(tmp_path):
    """A workspace from before decision 38 (no window features): the labelled photos are classified again at the
    refit (decision 43), the summary says what to do about the others, and the next classification (every window
    through the model, as the folder has labels) adapts them too."""
    from processes import run_cli

    model = make_adaptable_model(tmp_path / "models")
    truth = camera_site(tmp_path / "site")
    assert run_cli("classify", tmp_path / "site", "--model", model).returncode == 0
    with FolderSession.open(tmp_path / "site") as session:
        session.workspace._write(lambda db: db.execute("DELETE FROM window_features"))
        ids = {r.path: r.id for r in session.rows()}
        bricks = sorted(n for n, t in truth.items() if t == "no_crack")
        session.workspace.set_labels({ids[bricks[0]]: "no_crack", ids[sorted(truth)[1]]: "crack"})
        session.use_model(ModelRegistry(tmp_path / "models", tmp_path / "user").find(str(model)))
        current = session.current_predictions()
        assert current.adapted and current.n_labels == 2
        assert any(n.startswith("10 large photos have windows the site head cannot rescore")
                   and n.endswith("classify again to run every window through the model") for n in current.state.notes)
    again = run_cli("classify", tmp_path / "site")
    assert again.returncode == 0 and "site-adapted on 2 labels" in again.stderr, again.stderr


def test_classifying_again_clears_the_note_even_when_the_head_is_the_same(tmp_path):
    session, truth, ids = open_classified(tmp_path)
    with session:
        bricks = sorted(n for n, t in truth.items() if t == "no_crack")
        labelled = [bricks[0], sorted(truth)[1]]
        keep = [session.workspace.hash_of(ids[n]) for n in labelled]
        session.workspace._write(lambda db: db.execute("DELETE FROM window_features WHERE hash NOT IN (?, ?)", keep))
        session.workspace.set_labels({ids[labelled[0]]: "no_crack", ids[labelled[1]]: "crack"})
        first = session.adapt()
        assert first.adapted and any("10 large photos have windows the site head cannot rescore" in n
                                     for n in first.notes)
        assert first.run_again == 10  # what the sidebar offers to classify again
        session.classify(session.classifier(session.entry.path))
        again = session.adapt()
        assert again.key == first.key  # the same labels, the same examples: the head is reused...
        assert not any("cannot rescore" in n for n in again.notes), again.notes  # ...but not its old notes
        assert again.run_again == 0


def test_a_damaged_window_features_row_is_skipped_not_fatal(tmp_path):
    session, truth, ids = open_classified(tmp_path)
    with session:
        bricks = sorted(n for n, t in truth.items() if t == "no_crack")
        damaged = session.workspace.hash_of(ids[bricks[0]])
        session.workspace._write(lambda db: db.execute("UPDATE window_features SET vecs=x'0102' WHERE hash=?",
                                                       (damaged,)))
        session.workspace.set_labels({ids[bricks[0]]: "no_crack", ids[bricks[1]]: "no_crack",
                                      ids[sorted(truth)[1]]: "crack"})
        adapter = session.adapter()
        adapter.load_features(np.array([r.id for r in session.rows()], np.int64))
        assert (~adapter.photos.rescorable()).sum() == 1  # the damaged row is skipped when read
        state = session.adapt()
        assert state.adapted and state.n_labels == 3  # and its labelled photo is classified again at the refit
        assert not any("cannot rescore" in n for n in state.notes), state.notes
        adapted = verdicts(session)
        assert adapted[bricks[2]] == "no_crack"


def test_a_photo_s_windows_are_stored_in_grid_order_whichever_lane_finished_first(tmp_path):
    """Two model lanes may finish a photo's slices in either order: its window features come out sorted."""
    from crackdesk.core.pipeline import Photo
    from crackdesk.core.tiling import TileGrid

    model = make_adaptable_model(tmp_path / "models")
    classifier = Classifier(model)
    grid = TileGrid.for_image(681, 454, 227)
    photo = Photo(0, tmp_path / "p.png", hash="h", grid=grid, probs=np.linspace(0, 1, len(grid)))
    vectors = np.arange(len(grid) * 6, dtype=np.float32).reshape(len(grid), 6)
    photo.window_features = [(np.array([3, 4, 5]), vectors[3:]), (np.array([0, 1, 2]), vectors[:3])]
    index, feats = classifier.prediction(photo).window_features
    assert index.tolist() == [0, 1, 2, 3, 4, 5] and np.array_equal(feats, vectors)


def test_a_photo_s_windows_are_the_same_scored_alone_or_with_the_whole_folder(tmp_path):
    """The viewer scores one photo's windows on the GUI thread; a refit scores every window once and keeps them:
    both ways give the same P, and verdicts under another head are not served from that head's scores."""
    from crackdesk.core.sitehead import Head

    session, truth, ids = open_classified(tmp_path)
    with session:
        session.workspace.set_labels({ids[sorted(truth)[0]]: "no_crack", ids[sorted(truth)[1]]: "crack"})
        state = session.adapt()
        photos, row = session.adapter().photos, int(session.adapter()._index.positions(np.array([ids["wall_04.png"]]))[0])
        alone = photos.grid(row, Head(state.head.weights, state.head.bias, state.head.threshold))
        together = photos.verdicts(state.head), photos.grid(row, state.head)
        # float32 dot products of 1,280 features: BLAS sums one row and a block of rows in different orders
        assert together[1] == pytest.approx(alone, rel=1e-4, abs=1e-7)
        assert not np.array_equal(photos.verdicts(session.adapter().base), together[0])


def test_a_labelled_photo_s_windows_are_read_once_until_it_is_classified_again(tmp_path, monkeypatch):
    import crackdesk.core.site_photos as site_photos

    calls = []
    real = site_photos.photo_label_examples

    def counted(workspace, model_key, digest, *args):
        calls.append(digest)
        return real(workspace, model_key, digest, *args)

    monkeypatch.setattr(site_photos, "photo_label_examples", counted)
    session, truth, ids = open_classified(tmp_path)
    with session:
        names = sorted(truth)
        session.workspace.set_labels({ids[names[0]]: "no_crack", ids[names[1]]: "crack"})
        session.adapt(full=False)
        assert len(calls) == 2
        session.workspace.set_labels({ids[names[2]]: "no_crack"})
        session.adapt(full=False)
        assert len(calls) == 3  # only the new label's photo was read
        session.classify(session.classifier(session.entry.path))
        session.adapt(full=False)
        assert len(calls) == 6  # classified again: every labelled photo's windows read anew


def test_cross_validation_judges_photo_labels_by_the_verdict_and_the_estimate_covers_large_photos(tmp_path,
                                                                                                monkeypatch):
    """The sidebar's figures about a camera folder: each labelled photo is judged out of fold by the verdict rule
    on all its windows (what the grid shows), and the expected accuracy covers the unlabelled large photos (it
    used to count small images only, so a folder of camera photos never had one)."""
    from crackdesk.core.site_photos import LargePhotos

    model = make_adaptable_model(tmp_path / "models")
    truth = camera_site(tmp_path / "site", count=64)
    judged = []
    original = LargePhotos.verdict_logits

    def spy(self, head, photos=None):
        if photos is not None:
            judged.extend(int(k) for k in photos)
        return original(self, head, photos)

    monkeypatch.setattr(LargePhotos, "verdict_logits", spy)
    with FolderSession.open(tmp_path / "site") as session:
        session.use_model(ModelRegistry(tmp_path / "models", tmp_path / "user").find(str(model)))
        session.classify(Classifier(session.entry.path))
        ids = {r.path: r.id for r in session.rows()}
        labelled = sorted(truth)[:56]
        session.workspace.set_labels({ids[n]: truth[n] for n in labelled})
        state = session.adapt()
        assert state.cv.n == 56 and state.cv.enough
        assert state.n_unlabelled == 8 and state.estimate is not None and 0.5 <= state.estimate <= 1
        photos = session.adapter().photos
        rows = session.adapter()._index.positions(np.array([ids[n] for n in labelled], np.int64))
        assert sorted(judged) == sorted(photos.index_of(rows).tolist())  # each labelled photo once, in its fold

        # Two unlabelled photos lose their windows' features (as if screened): the head cannot judge them, so the
        # estimate leaves them out (the note asks to classify them again).
        screened = [(session.workspace.hash_of(ids[n]),) for n in sorted(truth)[56:58]]
        session.workspace._write(lambda db: db.executemany("DELETE FROM window_features WHERE hash=?", screened))
        session.adapter().load_features(session.adapter().ids)
        session.workspace.set_labels({ids[labelled[0]]: None})  # new labels: a new head and new figures
        state = session.adapt()
        assert state.run_again == 2 and state.n_unlabelled == 8 - 2 + 1 and state.cv.n == 55
        assert "expected on the 7 unlabelled whose every window it rescores" in state.quality()

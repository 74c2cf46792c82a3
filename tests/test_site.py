"""Site adaptation end to end with real ONNX models, replay memory and workspaces (issue 9): labels in, the site
head refitted, predictions move the right way; undo restores; reopening restores without a refit; clearing the
labels returns to the base model; a model without features or memory says why it cannot adapt; the exported
site model loads and classifies like any other.

The site: brick walls. Their mortar joints are dark lines, which the tiny contrast model (like the real one on
brickwork) calls cracks; the real cracks are single dark diagonals on the same red surface."""

from __future__ import annotations

import numpy as np
import pytest
from factories import make_adaptable_model, make_tiny_model
from PIL import Image

from crackdesk.core.inference import Classifier, classify_all
from crackdesk.core.models import ModelRegistry
from crackdesk.core.session import FolderSession


def brick_site(folder, count: int = 40, seed: int = 3) -> dict[str, str]:
    """Photos of a brick site and their truth: even ones intact bricks, odd ones a cracked render."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    truth = {}
    for i in range(count):
        a = (rng.normal(150, 10, (64, 64, 3)) * [1.2, 0.85, 0.8]).clip(0, 255).astype(np.uint8)
        if i % 2 == 0:
            a[::16, :, :] = 40  # bed joints
            a[:, (i % 5)::21, :] = 40  # head joints
            name, label = f"wall_{i:02d}.png", "no_crack"
        else:
            for t in range(64):
                a[t, (t + i) % 64, :] = 30
            name, label = f"wall_{i:02d}.png", "crack"
        Image.fromarray(a).save(folder / name)
        truth[name] = label
    return truth


@pytest.fixture
def adapted_site(tmp_path):
    model = make_adaptable_model(tmp_path / "models")
    truth = brick_site(tmp_path / "site")
    session = FolderSession.open(tmp_path / "site")
    entry = ModelRegistry(tmp_path / "models", tmp_path / "user").find(str(model))
    session.use_model(entry)
    session.classify(Classifier(entry.path))
    yield session, truth, entry
    session.close()


def accuracy(current, truth, names) -> float:
    verdict = {r.path: current.predicted(i) for i, r in enumerate(current.rows)}
    return float(np.mean([verdict[n] == truth[n] for n in names]))


def test_labels_adapt_the_rest_of_the_folder_and_nothing_else_changes(adapted_site):
    session, truth, entry = adapted_site
    model_bytes = entry.path.read_bytes()
    base = session.current_predictions()
    assert not base.adapted and accuracy(base, truth, truth) == 0.5  # every brick wall called cracked
    ids = {r.path: r.id for r in session.rows()}
    labelled = sorted(truth)[:8]
    session.submit_labels({ids[n]: truth[n] for n in labelled}).result()
    site = session.current_predictions()
    rest = [n for n in truth if n not in labelled]
    assert site.adapted and site.n_labels == 8
    assert accuracy(site, truth, rest) >= 0.9
    p_base = {r.path: p for r, p in zip(base.rows, base.p_crack)}
    p_site = {r.path: p for r, p in zip(site.rows, site.p_crack)}
    assert all(p_site[n] < p_base[n] for n in rest if truth[n] == "no_crack")  # the bricks moved the right way
    with session.workspace as ws:
        stored = dict((r.path, r.p_crack) for r in ws.rows(entry.key))
    assert stored == pytest.approx(p_base)  # the base model's predictions are kept as they were
    assert entry.path.read_bytes() == model_bytes  # the base model is never modified


def test_undo_restores_the_previous_head_and_clearing_returns_to_the_base(adapted_site):
    session, truth, _ = adapted_site
    ids = {r.path: r.id for r in session.rows()}
    names = sorted(truth)
    session.submit_labels({ids[n]: truth[n] for n in names[:6]}).result()
    six = session.current_predictions().p_crack.copy()
    change = session.submit_labels({ids[n]: truth[n] for n in names[6:10]}).result()
    ten = session.current_predictions().p_crack.copy()
    assert not np.allclose(six, ten)
    session.submit_labels(change.before, source="undo").result()
    np.testing.assert_allclose(session.current_predictions().p_crack, six, atol=1e-6)
    session.submit_labels({ids[n]: None for n in names[:6]}, source="user").result()
    cleared = session.current_predictions()
    assert not cleared.adapted
    np.testing.assert_allclose(cleared.p_crack, session.current_predictions(adapt=False).p_crack)


def test_a_folder_without_labels_gets_the_base_model_without_loading_the_site_adapter(adapted_site):
    session, _, entry = adapted_site
    current = session.current_predictions()
    base = {r.id: r.p_crack for r in session.rows(entry.key)}
    assert not current.adapted and current.state is None and not np.isnan(current.p_crack).any()
    np.testing.assert_array_equal(current.p_crack, [base[r.id] for r in current.rows])
    # Nothing to adapt to: neither the replay memory nor the folder's feature vectors were read (a quarter of a
    # second of `crackdesk classify` on 2,000 patches)
    assert session._adapter is None


def test_reopening_restores_the_head_without_refitting(adapted_site, tmp_path):
    session, truth, entry = adapted_site
    ids = {r.path: r.id for r in session.rows()}
    session.submit_labels({ids[n]: truth[n] for n in sorted(truth)[:8]}).result()
    before = session.current_predictions()
    assert before.state.cv is not None and before.state.retention is not None
    session.close()
    again = FolderSession.open(tmp_path / "site")
    assert again.remembered_model() == str(entry.path)  # the folder keeps its model (a file: by its path)
    again.use_model(entry)
    after = again.current_predictions()
    assert after.adapted and after.state.seconds == 0.0  # read back, not refitted
    np.testing.assert_allclose(after.p_crack, before.p_crack)
    assert after.state.summary() == before.state.summary()
    again.close()


def test_a_model_without_features_or_memory_says_why_it_cannot_adapt(tmp_path):
    folder = tmp_path / "site"
    truth = brick_site(folder, count=6)
    (tmp_path / "models").mkdir()
    make_tiny_model(tmp_path / "models" / "old.onnx")  # model format 1: no features output
    model = make_adaptable_model(tmp_path / "models2")
    (model.with_name("tinyf.memory.npz")).unlink()
    registry = ModelRegistry(tmp_path / "models", tmp_path / "user")
    for path, reason in ((tmp_path / "models" / "old.onnx", "no features output"), (model, "no replay memory")):
        with FolderSession.open(folder) as session:
            session.use_model(registry.find(str(path)))
            session.classify(Classifier(path))
            ids = [r.id for r in session.rows()]
            session.submit_labels({ids[0]: truth["wall_00.png"]}).result()
            current = session.current_predictions()
            assert not current.adapted and reason in session.adaptation_problem
            assert not np.isnan(current.p_crack).any()  # the base model still classifies


def test_the_exported_site_model_loads_and_classifies_as_adapted(adapted_site, tmp_path):
    from crackdesk.core.memory import load_memory
    from crackdesk.core.site_model import export_site_model

    session, truth, entry = adapted_site
    ids = {r.path: r.id for r in session.rows()}
    session.submit_labels({ids[n]: truth[n] for n in sorted(truth)[:8]}).result()
    adapted = session.current_predictions()
    out = tmp_path / "export" / "bricks.onnx"
    out.parent.mkdir()
    info = export_site_model(session, out)
    assert info.base_model == entry.key and info.site["labels"] == 8 and info.site["folder"] == "site"
    registry = ModelRegistry(tmp_path / "none", tmp_path / "user")
    installed = registry.import_model(out)  # model and memory as one unit
    assert installed.memory.is_file()
    memory = load_memory(installed.path, info.features["dim"])
    assert len(memory.labels) == len(load_memory(entry.path).labels) + 8
    probs = {p.path.name: p.p_crack for p in classify_all(installed.path, sorted((tmp_path / "site").glob("*.png")))}
    for row, p in zip(adapted.rows, adapted.p_crack):
        assert probs[row.path] == pytest.approx(p, abs=0.02)  # stored features are rounded to 8 bits
    registry.remove(installed)
    assert not installed.path.exists() and not installed.memory.exists()


def test_suggest_never_returns_labelled_photos_and_writes_its_csv(tmp_path):
    import csv

    from processes import run_cli

    model = make_adaptable_model(tmp_path / "models")
    truth = brick_site(tmp_path / "site", count=30)
    assert run_cli("classify", tmp_path / "site", "--model", model).returncode == 0
    out = tmp_path / "next.csv"
    first = run_cli("suggest", tmp_path / "site", "-n", "5", "--csv", out)
    assert first.returncode == 0, first.stderr
    assert "no labels yet: typical photos first" in first.stderr
    rows = list(csv.DictReader(out.open()))
    assert [list(r) for r in rows[:1]] == [["path", "p_crack", "reason"]] and len(rows) == 5
    labelled = set()
    for _ in range(3):
        names = [r["path"] for r in csv.DictReader(out.open())]
        assert not labelled & set(names) and len(set(names)) == 5
        labels = tmp_path / "labels.csv"
        with labels.open("w", newline="") as f:
            csv.writer(f).writerows([("path", "label")] + [(n, truth[n]) for n in names])
        assert run_cli("labels", "import", tmp_path / "site", labels).returncode == 0
        labelled |= set(names)
        result = run_cli("suggest", tmp_path / "site", "-n", "5", "--csv", out)
        assert result.returncode == 0 and f"site-adapted on {len(labelled)} labels" in result.stderr
    assert all(0.0 <= float(r["p_crack"]) <= 1.0 and r["reason"] for r in csv.DictReader(out.open()))


def test_a_labelled_tile_of_a_large_photo_is_a_site_label_of_its_own(tmp_path):
    model = make_adaptable_model(tmp_path / "models")
    brick_site(tmp_path / "site", count=6)
    big = np.concatenate([np.asarray(Image.open(tmp_path / "site" / f"wall_0{i}.png")) for i in range(2)], 1)
    Image.fromarray(np.concatenate([big] * 2, 0)).resize((227 * 2, 227 * 2)).save(tmp_path / "site" / "photo.png")
    with FolderSession.open(tmp_path / "site") as session:
        session.use_model(ModelRegistry(tmp_path / "models", tmp_path / "user").find(str(model)))
        photo = next(r.id for r in session.rows() if r.path == "photo.png")
        session.workspace.set_tile_label(photo, (0, 0, 227, 227), "no_crack")
        state = session.adapt()
        assert state.adapted and state.n_labels == 1 and state.n_tiles == 1  # features computed on demand
        labelled = session.workspace.labelled_features(session.entry.key)
        assert len(labelled.found) == 1 and not labelled.missing_tiles


def test_features_classified_after_the_adapter_loaded_reach_it_without_a_reread(tmp_path):
    """Classification hands each batch's features to the site adapter (no re-read of 40,000 rows after it), and
    the matrix it keeps is the one a fresh read of the workspace gives."""
    model = make_adaptable_model(tmp_path / "models")
    truth = brick_site(tmp_path / "site")
    session = FolderSession.open(tmp_path / "site")
    entry = ModelRegistry(tmp_path / "models", tmp_path / "user").find(str(model))
    session.use_model(entry)
    rows = session.rows()
    ids = np.array([r.id for r in rows], np.int64)
    session.adapt(ids)  # features loaded while nothing is classified
    adapter = session.adapter()
    assert not adapter.features.present.any()
    half = [(r.id, r.path) for r in rows[::2]]
    session.classify(Classifier(entry.path), half)
    assert not adapter.features_stale
    assert adapter.features.present.sum() == len(half)
    session.classify(Classifier(entry.path))
    live = adapter.features
    adapter.load_features(ids)
    np.testing.assert_array_equal(live.present, adapter.features.present)
    assert live.present.all()
    np.testing.assert_array_equal(live.codes, adapter.features.codes)
    np.testing.assert_allclose(live.scale, adapter.features.scale)
    # a label given during classification: the next batches are scored by the refitted head
    names = sorted(truth)
    by_path = {r.path: r.id for r in rows}
    session.submit_labels({by_path[n]: truth[n] for n in names[:8]}).result()
    state = session.adapt()
    assert state.adapted and session.site_head() is state.head
    session.close()


def test_the_feature_matrix_reads_stored_vectors_in_bulk_as_it_does_one_by_one():
    from crackdesk.core import features as codec
    from crackdesk.core.feature_matrix import FeatureMatrix
    from crackdesk.core.site_photos import PositionIndex

    rng = np.random.default_rng(0)
    vectors = rng.random((6, 16)).astype(np.float32) * 4
    vectors[2] -= 1.0  # one with negative values: the signed layout
    blobs = [codec.encode(v) for v in vectors]
    one, bulk, live = FeatureMatrix(8, 16), FeatureMatrix(8, 16), FeatureMatrix(8, 16)
    rows = np.array([7, 0, 3, 5, 1, 2])
    for r, b in zip(rows, blobs):
        one.set_row(int(r), b)
    bulk.set_blobs(rows, blobs)
    live.set_blobs(rows, codec.encode_many(vectors))  # a batch encoded at once, as classification stores it
    for m in (bulk, live):
        np.testing.assert_array_equal(m.codes, one.codes)
        np.testing.assert_array_equal(m.scale, one.scale)
        np.testing.assert_array_equal(m.offset, one.offset)
        np.testing.assert_array_equal(m.present, one.present)
    assert one.present.sum() == 6 and one.offset[3] < 0
    np.testing.assert_allclose(one.rows([7])[0], vectors[0], atol=float(vectors[0].max()) / 255)
    with pytest.raises(ValueError, match="4 values"):
        bulk.set_blobs(np.array([4]), [codec.encode(np.ones(4, np.float32))])
    index = PositionIndex(np.array([40, 10, 30, 20]))
    np.testing.assert_array_equal(index.positions(np.array([10, 99, 40, 5, 20])), [1, -1, 0, -1, 3])
    assert list(PositionIndex(np.zeros(0, np.int64)).positions(np.array([1]))) == [-1]


def test_a_refit_waited_for_holds_the_running_classification(tmp_path):
    model = make_adaptable_model(tmp_path / "models")
    brick_site(tmp_path / "site", count=6)
    session = FolderSession.open(tmp_path / "site")
    entry = ModelRegistry(tmp_path / "models", tmp_path / "user").find(str(model))
    session.use_model(entry)
    with session.waited_for():  # nothing to hold
        pass
    classifier, seen = Classifier(entry.path), []

    def on_batch(pairs, done, total):
        with session.waited_for():
            seen.append(classifier.hold.is_set())
        seen.append(classifier.hold.is_set())

    session.classify(classifier, on_batch=on_batch)
    assert seen[:2] == [True, False]
    with session.waited_for():
        assert not classifier.hold.is_set()  # that classification is over
    session.close()


def test_features_encoded_a_batch_at_a_time_are_the_bytes_of_one_at_a_time():
    from crackdesk.core import features as codec

    rng = np.random.default_rng(1)
    vectors = (rng.random((40, 1280)) * rng.choice([0.01, 1, 6], (40, 1))).astype(np.float32)
    vectors[3] = 0.0  # all zero: scale 1
    vectors[7] -= 0.5  # negative values: the signed layout
    vectors[9] = 2.5  # constant
    vectors[11, ::7] = 0.0
    assert codec.encode_many(vectors) == [codec.encode(v) for v in vectors]
    assert codec.encode_many(vectors[:0]) == []
    vectors[5, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        codec.encode_many(vectors)



def test_an_assessment_cancelled_for_a_newer_refit_stores_the_head_without_figures(adapted_site):
    import threading

    session, truth, entry = adapted_site
    ids = {r.path: r.id for r in session.rows()}
    session.submit_labels({ids[n]: truth[n] for n in sorted(truth)[:8]}).result()
    session.adapt(full=False)
    adapter = session.adapter()
    cancel = threading.Event()
    cancel.set()
    state = adapter.assess(adapter.state, cancel)
    assert state.cv is None and state.retention is None
    assert state.key not in adapter._recent  # an undo back to it refits rather than show a head without figures
    assert session.workspace.site_head(entry.key)[1] == state.key  # the head itself is kept
    full = adapter.assess(adapter.state)
    assert full.cv is not None and full.retention is not None and full.cv.n == 8


def test_a_fold_s_fit_stops_as_soon_as_a_newer_refit_cancels_it(adapted_site):
    """The figures' fits check the cancel at every optimisation step, not only between folds."""
    import threading

    from crackdesk.core import sitehead

    class SetAfter(threading.Event):
        """Set from its n-th check on: a newer refit arriving while a fold is being fitted."""

        def __init__(self, n):
            super().__init__()
            self.n, self.checks = n, 0

        def is_set(self):
            self.checks += 1
            return self.checks >= self.n

    session, truth, entry = adapted_site
    ids = {r.path: r.id for r in session.rows()}
    session.submit_labels({ids[n]: truth[n] for n in sorted(truth)[:8]}).result()
    session.adapt(full=False)
    adapter = session.adapter()
    X, y, *_ = adapter.state.training
    start = adapter.state.head
    stopped = sitehead.fit(X, y, adapter.memory, adapter.base, start=start, cancel=SetAfter(1))
    assert np.array_equal(stopped.weights, start.weights)  # not one step taken
    moved = sitehead.fit(X[:-2], y[:-2], adapter.memory, adapter.base, start=start)
    assert not np.array_equal(moved.weights, start.weights)
    cancel = SetAfter(2)  # the first fold's start passes; its fit's first step sees the cancel
    assert sitehead.assess_labels(X, y, adapter.memory, adapter.base, start, np.zeros(3), cancel=cancel) == (None, None)
    assert cancel.checks == 3  # fold start, the fit's first step, the check after the fit: no second fold


def test_a_group_judged_whole_is_scored_by_its_own_logit_not_its_strongest_example(adapted_site):
    """Cross-validation scores a label by one logit: a large photo's comes from the verdict rule on its windows
    (group_logits), which may call it clean where one of its windows alone says crack; other groups keep "any
    example says crack"."""
    from crackdesk.core import sitehead

    session, truth, entry = adapted_site
    ids = {r.path: r.id for r in session.rows()}
    session.submit_labels({ids[n]: truth[n] for n in sorted(truth)}).result()
    session.adapt(full=False)
    adapter = session.adapter()
    X, y, *_ = adapter.state.training
    start = adapter.state.head
    groups = np.arange(len(y)) // 2  # pairs of examples as if each were one photo's windows
    y = y[groups * 2]  # one class per pair
    plain, _ = sitehead.assess_labels(X, y, adapter.memory, adapter.base, start, np.zeros(0), groups=groups)
    said_crack = sitehead.assess_labels(X, y, adapter.memory, adapter.base, start, np.zeros(0), groups=groups,
                                        group_logits=lambda head, tested: np.full(len(tested), 3.0))[0]
    unjudged = sitehead.assess_labels(X, y, adapter.memory, adapter.base, start, np.zeros(0), groups=groups,
                                      group_logits=lambda head, tested: np.full(len(tested), np.nan))[0]
    n_crack = int(y[::2].sum())
    assert said_crack.n == plain.n == len(y) // 2 and said_crack.correct == n_crack  # every pair judged crack
    assert unjudged == plain  # NaN: not judged whole, the strongest example decides


def test_a_head_fitted_with_another_replay_memory_is_fitted_again(adapted_site):
    """A model's memory built again (other features for the same rows: decision 45 measured the int8 file's again
    with exact sums) must not bring back the head a folder stored with the old one."""
    from crackdesk.core.site import SiteAdapter

    session, truth, entry = adapted_site
    ids = {r.path: r.id for r in session.rows()}
    session.submit_labels({ids[n]: truth[n] for n in sorted(truth)[:8]}).result()
    first = session.adapt()
    reopened = SiteAdapter(session.workspace, entry.info, entry.key).refit(full=False)
    assert reopened.key == first.key and reopened.training is None  # the stored head, as the folder opens again
    rebuilt = SiteAdapter(session.workspace, entry.info, entry.key)
    rebuilt.memory.meta["created"] = "2026-11-28T17:55:00Z"  # the same rows, built again
    again = rebuilt.refit(full=False)
    assert again.key != first.key and again.training is not None  # fitted on the memory it has

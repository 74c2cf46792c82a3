"""Large photos' window features stored as principal components of the model's replay memory (decision 48): the
basis, the stored rows that name it, the site head scoring them, and the shipped model end to end on a brick
site of camera-sized photos, including a workspace whose rows an older CrackDesk stored whole."""

from __future__ import annotations

import numpy as np
import pytest
from test_site_photos import camera_site

from crackdesk.core import features as codec
from crackdesk.core.feature_matrix import FeatureMatrix
from crackdesk.core.inference import Classifier
from crackdesk.core.memory import load_memory, memory_path, save_memory
from crackdesk.core.models import ModelRegistry
from crackdesk.core.projection import MIN_MEMORY_ROWS, WINDOW_COMPONENTS, Projection, fit_basis, load_projection
from crackdesk.core.session import FolderSession
from crackdesk.core.site_model import export_site_model
from crackdesk.core.site_photos import LargePhotos, photo_p_under, stored_windows


DIM = 320


def memory_like(rows: int, seed: int = 0, world: int = 0) -> np.ndarray:
    """Non-negative DIM-d features with most of their variance in 24 directions (the `world`'s), as pooled CNN
    features of one kind of surface."""
    mixing = np.random.default_rng(1000 + world).random((24, DIM))
    rng = np.random.default_rng(seed)
    return (rng.random((rows, 24)) @ mixing + 0.05 * rng.random((rows, DIM))).astype(np.float32)


def projection_of(world: int = 0) -> Projection:
    return Projection(*fit_basis(memory_like(MIN_MEMORY_ROWS, world=world)))


def test_the_basis_is_orthonormal_the_same_each_time_and_only_fitted_on_a_memory_large_enough():
    features = memory_like(MIN_MEMORY_ROWS)
    basis, mean = fit_basis(features)
    assert basis.shape == (WINDOW_COMPONENTS, DIM) and mean.shape == (DIM,)
    assert np.abs(basis @ basis.T - np.eye(WINDOW_COMPONENTS)).max() < 1e-4
    again, _ = fit_basis(features.copy())
    assert np.array_equal(basis, again)  # one memory, one basis: its rows name it by a fingerprint
    assert (basis[np.arange(len(basis)), np.abs(basis).argmax(axis=1)] > 0).all()
    assert fit_basis(features[:MIN_MEMORY_ROWS - 1]) is None  # too few rows to trust
    # With the model's final layer given, the basis keeps its direction: the base model scores a projected row as
    # it scores the row itself, even one of another world, whose features the memory's directions miss
    head = np.random.default_rng(7).normal(size=DIM)
    kept = Projection(*fit_basis(features, head))
    assert np.abs(kept.basis @ kept.basis.T - np.eye(WINDOW_COMPONENTS)).max() < 1e-4
    elsewhere = memory_like(30, seed=8, world=3)
    exact = elsewhere @ head
    np.testing.assert_allclose(kept.reconstruct(kept.project(elsewhere)) @ head, exact, rtol=1e-4, atol=1e-3)
    plain = Projection(basis, mean)
    assert np.abs(plain.reconstruct(plain.project(elsewhere)) @ head - exact).max() > 0.5  # without it: not so
    assert fit_basis(features[:, :WINDOW_COMPONENTS]) is None  # no narrower than the basis: stored whole


def test_a_head_scores_projected_rows_as_it_scores_the_features_they_stand_for():
    projection = projection_of()
    vectors = memory_like(50, seed=1)
    matrix = FeatureMatrix(50, projection.k, projection=projection)
    matrix.codes[:], matrix.scale[:], matrix.offset[:] = codec.quantize_rows(projection.project(vectors))
    matrix.present[:] = True
    weights, bias = np.random.default_rng(2).normal(size=DIM), -0.7
    whole = matrix.rows(np.arange(50))
    assert whole.shape == (50, DIM)  # fitting sees features, not coefficients
    assert np.abs(whole - vectors).max() < 0.05 * np.abs(vectors).max()  # the basis holds this world's features
    np.testing.assert_allclose(matrix.logits(weights, bias), whole @ weights + bias, rtol=1e-4, atol=1e-3)
    picked = matrix.take(np.array([3, 7])).appended(matrix.head(2))
    assert picked.projection is projection
    np.testing.assert_allclose(picked.logits(weights, bias), (whole[[3, 7, 0, 1]] @ weights + bias), atol=1e-3)


def test_projected_rows_name_their_basis_and_rows_of_another_are_refused():
    projection, other = projection_of(), projection_of(world=1)
    vectors = memory_like(221, seed=3)
    blob = codec.encode_matrix(vectors, projection)
    assert len(blob) == 12 + 8 + 221 * (8 + projection.k)  # against 12 + 221 * (8 + DIM) stored whole
    codes, scale, offset, fingerprint = codec.decode_matrix(blob)
    assert fingerprint == projection.fingerprint != other.fingerprint
    # Classification projects in onnxruntime's one quiet thread, a reader in numpy: the same numbers
    np.testing.assert_allclose(projection.project_beside_the_model(vectors), projection.project(vectors), atol=1e-4)
    assert np.array_equal(stored_windows(blob, projection)[0], codes)
    for wrong in (other, None):  # another basis, or a model without one: not these numbers
        with pytest.raises(ValueError):
            stored_windows(blob, wrong)
    with pytest.raises(ValueError):
        codec.decode_matrix(blob[:-1])
    # A row an older CrackDesk stored whole is projected where it is read
    old_codes, old_scale, old_offset = stored_windows(codec.encode_matrix(vectors), projection)
    read = old_codes * old_scale[:, None] + old_offset[:, None]
    np.testing.assert_allclose(read, codes * scale[:, None] + offset[:, None], atol=2 * float(scale.max()))


def test_a_memory_large_enough_stores_its_basis_and_a_small_one_none(tmp_path):
    features = memory_like(MIN_MEMORY_ROWS + 76)
    labels = np.arange(len(features)) % 2
    holdout = np.arange(len(features)) % 5 == 0
    model = tmp_path / "big.onnx"
    save_memory(memory_path(model), features, labels, holdout, {"source": "test"})
    projection = load_projection(memory_path(model))
    expected, mean = fit_basis(features.astype(np.float16))  # fitted on the rows as the file keeps them
    assert np.array_equal(projection.basis, expected) and np.array_equal(projection.mean, mean)
    assert load_memory(model, DIM).features.shape == features.shape  # the memory itself reads as before
    small = tmp_path / "small.onnx"
    save_memory(memory_path(small), features[:80], labels[:80], holdout[:80], {})
    assert load_projection(memory_path(small)) is None
    assert load_projection(tmp_path / "absent.memory.npz") is None


@pytest.fixture(scope="module")
def shipped_site(tmp_path_factory):
    """The brick site as camera-sized photos, classified by the shipped MobileNetV2 (whose memory has a basis)."""
    root = tmp_path_factory.mktemp("projected")
    truth = camera_site(root / "site", count=8)
    entry = ModelRegistry().find("mobilenetv2")
    session = FolderSession.open(root / "site")
    session.use_model(entry)
    assert session.classify(Classifier(entry.path)).tiled == len(truth)
    yield session, entry, truth
    session.close()


def test_the_shipped_model_stores_its_windows_projected_and_the_base_head_scores_them_as_the_model_did(shipped_site):
    session, entry, truth = shipped_site
    projection = load_projection(memory_path(entry.path))
    assert projection is not None and projection.k == WINDOW_COMPONENTS and projection.dim == 1280
    rows = list(session.workspace.window_features(entry.key))
    assert len(rows) == len(truth)
    for _, n_windows, _, blob in rows:
        assert codec.decode_matrix(blob)[3] == projection.fingerprint
        assert len(blob) == 20 + n_windows * (8 + WINDOW_COMPONENTS)  # 136 bytes a window instead of 1,288
    adapter = session.adapter()
    adapter.load_features(np.array([r.id for r in session.rows()], np.int64))
    assert adapter.photos.rescorable().all()
    for row in session.rows():
        stored = np.array([t[4] for t in session.workspace.tile_results(session.workspace.hash_of(row.id), entry.key)])
        rescored = adapter.window_grid(row.id).ravel()  # the model's own head on the projected windows
        assert np.abs(rescored - stored).max() < 0.03, row.path  # 0.13 without the head's direction


def test_photo_labels_teach_through_projected_windows_and_rows_stored_whole_still_count(shipped_site,
                                                                                       tmp_path_factory):
    session, entry, truth = shipped_site
    ids = {r.path: r.id for r in session.rows()}
    adapter = session.adapter()
    adapter.load_features(np.array(sorted(ids.values()), np.int64))
    before = adapter.photos.verdict_logits(adapter.base)
    # The rows an older CrackDesk wrote: every window's features whole, no basis named
    classifier = Classifier(entry.path)
    predictions = [p for batch in classifier.classify([session.folder / n for n in sorted(ids)]) for p in batch]
    whole = [(p.hash, len(p.tiles), *p.window_features) for p in predictions]
    assert len(whole) == len(ids)
    session.workspace.set_window_features(entry.key, whole)
    assert all(codec.decode_matrix(blob)[3] is None for *_, blob in session.workspace.window_features(entry.key))
    old = LargePhotos.load(session.workspace, entry.key, adapter._index.positions, 1280,
                           projection=adapter.projection)
    assert old.rescorable().all() and old.features.dim == WINDOW_COMPONENTS  # projected where read
    np.testing.assert_allclose(old.verdict_logits(adapter.base), before, atol=0.05)

    bricks = sorted(n for n, t in truth.items() if t == "no_crack")
    session.workspace.set_labels({ids[bricks[0]]: "no_crack"})
    state = session.adapt()
    assert state.adapted
    found = session.workspace.labelled_features(entry.key, entry.info.threshold, projection=adapter.projection).found
    assert found and all("@" in key and vector.shape == (1280,) for key, _, vector in found)
    # What the GUI shows of a photo while classifying is what the adapter shows once it has read the photo
    adapted = dict(zip(adapter.ids.tolist(), adapter.probabilities(state)))
    by_hash = {session.workspace.hash_of(i): i for i in ids.values()}
    live = {by_hash[p.hash]: photo_p_under(state.head, p.tiles, p.window_features, classifier.window_projection)
            for p in predictions}
    assert max(abs(live[i] - adapted[i]) for i in live) < 0.002  # 0.0007 here; 0.0035 scoring the features whole
    # The exported site model's memory has a basis of its own, which keeps the site head's direction
    out = tmp_path_factory.mktemp("export") / "walls-site.onnx"
    export_site_model(session, out)
    exported = load_projection(memory_path(out))
    direction = state.head.weights / np.linalg.norm(state.head.weights)
    assert exported.fingerprint != adapter.projection.fingerprint
    assert abs(float(exported.basis[0].astype(np.float64) @ direction)) > 0.9999
    session.workspace.set_labels({ids[bricks[0]]: None})


def test_a_basis_of_another_width_is_not_used_and_classification_stores_rows_whole(tmp_path):
    """A memory file whose basis does not fit the model's features (a file put beside the wrong model): large
    photos are still classified, their windows kept whole, instead of onnxruntime failing on every photo."""
    from factories import FEATURES_DIM, make_adaptable_model

    model = make_adaptable_model(tmp_path / "models")
    with np.load(memory_path(model)) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays["window_basis"], arrays["window_mean"] = fit_basis(memory_like(MIN_MEMORY_ROWS))  # 320-d, not 6-d
    np.savez_compressed(memory_path(model), **arrays)
    assert load_projection(memory_path(model)) is not None
    assert load_projection(memory_path(model), FEATURES_DIM) is None
    truth = camera_site(tmp_path / "site", count=2)
    entry = ModelRegistry(tmp_path / "models", tmp_path / "user").find(str(model))
    classifier = Classifier(entry.path)
    assert classifier.window_projection is None
    with FolderSession.open(tmp_path / "site") as session:
        session.use_model(entry)
        report = session.classify(classifier)
        assert report.tiled == len(truth) and not report.errors
        rows = list(session.workspace.window_features(entry.key))
        assert len(rows) == len(truth) and all(codec.decode_matrix(blob)[3] is None for *_, blob in rows)

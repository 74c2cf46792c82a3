import threading

import numpy as np
import onnxruntime as ort
import pytest
from factories import make_tiny_model, tiny_info, write_images

from crackdesk.core.images import load_rgb
from crackdesk.core.inference import Classifier, classify_all
from crackdesk.core.hashing import file_hash


def direct_probabilities(model_path, paths, pre):
    """What calling onnxruntime by hand gives, one image at a time."""
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    out = []
    for p in paths:
        x = pre(load_rgb(p))[None]
        out.append(float(session.run(None, {"image": x})[0].reshape(-1)[0]))
    return np.array(out)


def test_same_probabilities_as_onnxruntime_directly(tmp_path, tiny_model):
    paths = write_images(tmp_path / "imgs", 37)
    classifier = Classifier(tiny_model, batch_size=8, workers=2)
    results = classify_all(classifier, paths)
    assert [r.index for r in results] == list(range(37))  # input order kept across batches and threads
    got = np.array([r.p_crack for r in results])
    want = direct_probabilities(tiny_model, paths, classifier.pre)
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert {r.label for r in results} == {"crack", "no_crack"}  # the contrast detector separates them
    assert all(r.hash == file_hash(p) for r, p in zip(results, paths))


def test_bad_files_become_errors_and_do_not_stop_the_batch(tmp_path, tiny_model):
    paths = write_images(tmp_path / "imgs", 6)
    (tmp_path / "imgs" / "empty.jpg").write_bytes(b"")
    (tmp_path / "imgs" / "text.png").write_text("nope")
    mixed = paths[:3] + [tmp_path / "imgs" / "empty.jpg", tmp_path / "imgs" / "text.png",
                         tmp_path / "imgs" / "missing.jpg"] + paths[3:]
    results = classify_all(tiny_model, mixed, batch_size=4)
    errors = {r.path.name: r.error for r in results if r.error}
    assert set(errors) == {"empty.jpg", "text.png", "missing.jpg"}
    assert "empty" in errors["empty.jpg"] and "not an image" in errors["text.png"]
    assert sum(r.p_crack is not None for r in results) == 6


def test_threshold_override_changes_labels(tmp_path, tiny_model):
    paths = write_images(tmp_path / "imgs", 4)
    low = classify_all(Classifier(tiny_model, threshold=0.01), paths)
    assert all(r.label == "crack" for r in low)


def test_cancel_stops_between_batches(tmp_path, tiny_model):
    paths = write_images(tmp_path / "imgs", 64, size=(32, 32))
    cancel = threading.Event()
    seen = 0
    for batch in Classifier(tiny_model, batch_size=4, workers=1).classify(paths, cancel=cancel):
        seen += len(batch)
        cancel.set()
    assert 0 < seen < 64


@pytest.mark.parametrize("class_names", [["crack", "background", "stain"], ["background", "stain", "crack"]])
def test_softmax_models_use_the_positive_column(tmp_path, tiny_model, class_names):
    # The factory puts P(crack) in the positive column and (1 - P(crack)) / 2 in the others, so reading any
    # other column gives other numbers; the one-column model with the same graph gives the right ones.
    info = tiny_info(output="softmax", class_names=class_names, positive_class="crack")
    path = make_tiny_model(tmp_path / "soft.onnx", info=info, output_columns=3)
    paths = write_images(tmp_path / "imgs", 4)
    got = np.array([r.p_crack for r in classify_all(path, paths)])
    want = np.array([r.p_crack for r in classify_all(tiny_model, paths)])
    assert np.abs(want - (1 - want) / 2).min() > 0.05  # the wrong column would differ
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_progress_is_reported(tmp_path, tiny_model):
    paths = write_images(tmp_path / "imgs", 10)
    seen = []
    list(Classifier(tiny_model, batch_size=3).classify(paths, progress=lambda d, t: seen.append((d, t))))
    assert seen[-1] == (10, 10) and all(t == 10 for _, t in seen)


def test_a_missing_model_file_is_a_model_error(tmp_path):
    from crackdesk.core.errors import ModelError

    with pytest.raises(ModelError, match="not found"):
        Classifier(tmp_path / "none.onnx")

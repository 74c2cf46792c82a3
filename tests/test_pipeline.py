"""The one pipeline for every photo (core/pipeline.py): large photos decoded once in the pool, their windows
filling the model's batches together with other photos', results in order, memory bounded."""

import threading
import time

import numpy as np
import pytest
from test_tiling import crack_patch, grid_mosaic, plain_patch

from crackdesk.core import pipeline
from crackdesk.core.datasets import CRACK, NO_CRACK
from crackdesk.core.inference import Classifier
from crackdesk.core.session import FolderSession
from crackdesk.core.tiling import heatmap_of_image


@pytest.fixture
def classifier(tiny_model):
    return Classifier(tiny_model, batch_size=8)


def mixed_folder(folder, large: int = 5, small: int = 6):
    """Large photos (2 x 3 windows), small patches and one corrupt file, interleaved; the truth per name."""
    folder.mkdir()
    truth = {}
    for i in range(max(large, small)):
        if i < large:
            cracked = np.array([[False, i % 2 == 1, False], [False, i % 2 == 1, False]])  # a crack over 2 tiles
            grid_mosaic(cracked, seed=10 * i).save(folder / f"photo{i}.png")
            truth[f"photo{i}.png"] = CRACK if cracked.any() else NO_CRACK
        if i < small:
            (crack_patch if i % 2 else plain_patch)(100 + i).save(folder / f"patch{i}.png")
            truth[f"patch{i}.png"] = CRACK if i % 2 else NO_CRACK
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return truth


def test_large_photos_are_decoded_once_and_fill_model_batches_with_other_photos(classifier, tmp_path, monkeypatch):
    truth = mixed_folder(tmp_path / "f")
    paths = sorted((tmp_path / "f").iterdir())
    decodes, batch_sizes = [], []
    real_run = classifier.run_tensor
    from crackdesk.core import tiling

    real_load = tiling.load_for_heatmap
    monkeypatch.setattr(tiling, "load_for_heatmap", lambda path, data=None, **k: decodes.append(path) or
                        real_load(path, data, **k))
    monkeypatch.setattr(classifier, "run_tensor", lambda x: batch_sizes.append(len(x)) or real_run(x))
    predictions = [p for batch in classifier.classify(paths) for p in batch]
    assert [p.index for p in predictions] == list(range(len(paths)))  # input order
    by_name = {p.path.name: p for p in predictions}
    assert "broken.jpg" in by_name and by_name["broken.jpg"].error and by_name["broken.jpg"].p_crack is None
    for name, label in truth.items():
        assert by_name[name].label == label, name
    large = [p for p in predictions if p.path.name.startswith("photo")]
    assert sorted(decodes) == sorted(p.path for p in large)  # each large photo decoded once, at full size
    assert all(len(p.tiles) == 6 and p.features is None for p in large)
    assert all(p.tiles is None for p in predictions if p.path.name.startswith("patch"))
    # 5 photos x 6 windows + 6 patches = 36 inputs in batches of 8: full batches but the last (two model lanes may
    # finish the last batch before the one beside it)
    assert sum(batch_sizes) == 36 and sorted(batch_sizes)[1:] == [8] * (len(batch_sizes) - 1)


def test_a_photos_tiles_are_those_of_its_heatmap(classifier, tmp_path):
    image = grid_mosaic(np.array([[False, True, False], [True, False, False]]), seed=3)
    image.save(tmp_path / "m.png")
    (p,) = [p for batch in classifier.classify([tmp_path / "m.png"]) for p in batch]
    expected = heatmap_of_image(classifier, image)
    assert [t[:4] for t in p.tiles] == [t[:4] for t in expected.tiles()]
    assert np.allclose([t[4] for t in p.tiles], expected.probs.ravel(), atol=1e-6)
    assert p.p_crack == pytest.approx(expected.p_photo) and p.label == CRACK


def test_memory_stays_bounded_a_few_large_photos_ahead(classifier, tmp_path, monkeypatch):
    folder = tmp_path / "f"
    folder.mkdir()
    for i in range(14):
        grid_mosaic(np.zeros((2, 2), bool), seed=i).save(folder / f"{i:02}.png")
    alive, peak, lock = set(), [0], threading.Lock()
    real_cut = pipeline.cut_photo

    def cut(classifier, photo, *a, **k):
        out = real_cut(classifier, photo, *a, **k)
        with lock:
            alive.add(photo.index)
            peak[0] = max(peak[0], len(alive))
        return out

    monkeypatch.setattr(pipeline, "cut_photo", cut)
    real_run = classifier.run_tensor
    monkeypatch.setattr(classifier, "run_tensor", lambda x: time.sleep(0.05) or real_run(x))  # slow: decoding runs ahead
    for photos in pipeline.run_photos(classifier, sorted(folder.iterdir())):
        with lock:
            for photo in photos:
                assert photo.inputs is None  # windows freed as soon as the photo is done
                alive.discard(photo.index)
    # 3 cut ahead (TILE_TASKS_AHEAD), the one whose windows fill the next batch, and those of the runs in flight
    # or queued (a batch of 8 covers 2 photos of 4 windows): never the folder's 14
    assert 1 <= peak[0] <= pipeline.TILE_TASKS_AHEAD + 1 + 2 * (classifier.lanes + pipeline.QUEUED_BATCHES)


def test_cancel_stops_between_model_runs(classifier, tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    for i in range(8):
        grid_mosaic(np.zeros((2, 3), bool), seed=i).save(folder / f"{i}.png")
    cancel = threading.Event()
    seen = []
    for batch in classifier.classify(sorted(folder.iterdir()), cancel=cancel):
        seen += batch
        cancel.set()
    assert 1 <= len(seen) < 8


def test_a_folder_of_large_photos_stores_tiles_and_verdicts(tiny_model, tmp_path):
    truth = mixed_folder(tmp_path / "f", large=4, small=2)
    classifier = Classifier(tiny_model)
    with FolderSession.open(tmp_path / "f") as session:
        report = session.classify(classifier)
        assert report.classified == len(truth) and [p for p, _ in report.errors] == ["broken.jpg"]
        ws = session.workspace
        ws.flush()
        rows = {r.path: r for r in ws.rows(classifier.key)}
        for name, label in truth.items():
            assert rows[name].predicted == label, name
            tiles = ws.tile_results(rows[name].hash, classifier.key)
            assert len(tiles) == (6 if name.startswith("photo") else 0), name


def test_ctrl_c_in_the_consumer_stops_the_source_before_returning_and_keeps_what_came(tiny_model, tmp_path):
    """A cluster source's job must be stopped while the driver is still connected: left to the garbage collector
    (the traceback keeps the generator alive), Ray started a local instance to cancel it after the disconnect."""
    from crackdesk.core.classify import classify_into_workspace

    mixed_folder(tmp_path / "f", large=2, small=4)
    classifier = Classifier(tiny_model)
    closed = []

    def source(paths, cancel):
        try:
            yield from classifier.classify(paths, cancel=cancel)
        finally:
            closed.append(True)

    came = []

    def interrupt(pairs, done, total):
        came.extend(i for i, p in pairs if p.p_crack is not None)
        if came:
            raise KeyboardInterrupt

    with FolderSession.open(tmp_path / "f") as session:
        ws = session.workspace
        items = [(r.id, r.path) for r in ws.rows()]
        try:
            classify_into_workspace(ws, classifier, items, on_batch=interrupt, source=source)
        except KeyboardInterrupt:
            assert closed == [True]  # while the caller handles it (cluster mode: still connected)
        else:
            pytest.fail("the interrupt did not come through")
        ws.flush()
        assert [r.id for r in ws.rows(classifier.key) if r.predicted is not None] == sorted(came)


@pytest.fixture
def screened(tmp_path):
    """A model that names a screening model beside it (a cheaper one at a smaller input, as cnn is for
    mobilenetv2-int8): the screen settles the windows it puts below 0.3."""
    from factories import make_tiny_model, tiny_info

    folder = tmp_path / "models"
    folder.mkdir()
    make_tiny_model(folder / "screen.onnx", 16, tiny_info(16, name="screen", version="1"))
    return make_tiny_model(folder / "main.onnx", 32, tiny_info(32, name="main", version="1",
                                                                screen={"model": "screen@1", "below": 0.3}))


def test_a_screening_model_settles_the_clear_windows_and_the_model_runs_the_rest(screened, tmp_path, monkeypatch):
    truth = np.zeros((3, 4), bool)
    truth[1, 1] = truth[1, 2] = True
    grid_mosaic(truth, seed=4).save(tmp_path / "m.png")
    fast, exact = Classifier(screened, batch_size=8), Classifier(screened, batch_size=8, exact=True)
    assert fast.screen is not None and fast.screen.key == "screen@1" and exact.screen is None
    ran = []
    real_run = fast.run_tensor
    monkeypatch.setattr(fast, "run_tensor", lambda x: ran.append(len(x)) or real_run(x))
    (p,) = [p for batch in fast.classify([tmp_path / "m.png"]) for p in batch]
    (q,) = [p for batch in exact.classify([tmp_path / "m.png"]) for p in batch]
    screen_p = heatmap_of_image(fast.screen, grid_mosaic(truth, seed=4)).probs.ravel()
    passed = screen_p >= 0.3
    assert 2 <= passed.sum() < 12 and sum(ran) == passed.sum()  # only the windows the screen let through ran
    fast_p, exact_p = np.array([t[4] for t in p.tiles]), np.array([t[4] for t in q.tiles])
    assert np.allclose(fast_p[passed], exact_p[passed], atol=1e-6)  # the model's own P where it ran
    assert np.allclose(fast_p[~passed], screen_p[~passed], atol=1e-6)  # the screen's where it settled them
    assert p.label == q.label == CRACK


def test_a_missing_screening_model_means_every_window_runs_through_the_model(screened, tmp_path):
    (screened.parent / "screen.onnx").unlink()
    classifier = Classifier(screened)
    assert classifier.screen is None and "screen@1" in classifier.screen_note and "every window" in \
        classifier.screen_note


def test_classify_exact_and_heatmap_exact_on_the_command_line(screened, tmp_path, capsys):
    from crackdesk.cli.main import main

    folder = tmp_path / "f"
    folder.mkdir()
    grid_mosaic(np.array([[True, True], [False, False]]), seed=1).save(folder / "m.png")
    assert main(["heatmap", str(folder), "--model", str(screened), "--out", str(tmp_path / "o")]) == 0
    assert "windows screened by screen@1" in capsys.readouterr().err
    assert main(["heatmap", str(folder), "--model", str(screened), "--out", str(tmp_path / "o"), "--exact"]) == 0
    assert "screened" not in capsys.readouterr().err
    assert main(["classify", str(folder), "--model", str(screened), "--exact"]) == 0


def test_a_hold_keeps_model_batches_back_until_released(classifier, tmp_path, monkeypatch):
    """Classifier.hold (set while a refit the inspector waits for runs) stops new model batches, never for long."""
    truth = mixed_folder(tmp_path / "f")
    paths = sorted((tmp_path / "f").iterdir())
    runs = []
    real_run = classifier.run_tensor
    monkeypatch.setattr(classifier, "run_tensor", lambda x: runs.append(time.monotonic()) or real_run(x))
    classifier.hold.set()
    out = []
    worker = threading.Thread(target=lambda: out.extend(p for b in classifier.classify(paths) for p in b))
    worker.start()
    time.sleep(0.4)
    assert runs == []  # held
    released = time.monotonic()
    classifier.hold.clear()
    worker.join(30)
    assert runs and min(runs) >= released and len(out) == len(paths)
    assert {p.path.name: p.label for p in out if p.path.name in truth} == truth
    monkeypatch.setattr(pipeline, "HOLD_AT_MOST_S", 0.2)  # a hold nobody releases delays, never stops
    classifier.hold.set()
    assert len([p for b in classifier.classify(paths) for p in b]) == len(paths)
    classifier.hold.clear()


def test_a_batch_waits_queued_behind_busy_lanes(tiny_model, tmp_path, monkeypatch):
    """Every lane busy: one more batch is accepted (so a lane that finishes starts it at once, without waiting for
    the thread feeding the pipeline), and the one after waits for the oldest run."""
    classifier = Classifier(tiny_model, lanes=2)
    release, started = threading.Event(), []
    monkeypatch.setattr(pipeline, "_run_batch", lambda c, running: started.append(running) or release.wait(10))
    lanes = pipeline._ModelLanes(classifier)
    photos = [pipeline.Photo(k, tmp_path / f"{k}.jpg", slices_to_run=1) for k in range(4)]
    accepted = []

    def feed():
        for k, photo in enumerate(photos):
            lanes.submit([(photo, 0, 1)])
            accepted.append(k)

    feeder = threading.Thread(target=feed)
    feeder.start()
    time.sleep(0.5)
    try:
        assert len(started) == lanes.count == 2  # both lanes run, the third batch waits in the queue
        assert accepted == [0, 1, 2]  # ...accepted; the fourth submit blocks
    finally:
        release.set()
        feeder.join(10)
        lanes.drain()
        lanes.close()
    assert accepted == [0, 1, 2, 3] and sorted(running[0][0].index for running in started) == [0, 1, 2, 3]
    assert [photo.slices_to_run for photo in photos] == [0, 0, 0, 0]  # each run counted off its photo

"""Small images classified in worker processes (core/worker_processes.py, decision 51): the same results as the
threaded pipeline, stored by the same writer; large photos, a stopped worker, a model that cannot load and a
cancel all end with every image accounted for, never with a half-done folder or a process left behind."""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from factories import make_feature_model, write_images
from processes import as_in_a_terminal, children, gone, workspace_count
from test_tiling import crack_patch, grid_mosaic

from crackdesk.cli.main import main
from crackdesk.core import worker_processes
from crackdesk.core.classify import classify_into_workspace
from crackdesk.core.inference import Classifier
from crackdesk.core.scan import scan_folder
from crackdesk.core.session import FolderSession
from crackdesk.core.store import open_workspace
from crackdesk.core.worker_processes import CHUNK, SmallImageWorkers


@pytest.fixture
def model(tmp_path):
    return make_feature_model(tmp_path / "tinyf.onnx")


def classified(folder, workspace, classifier, source_of=None, **kwargs):
    """{relative path: (hash, p_crack, features, error, tiled)} after classify_into_workspace, its report, and
    {relative path: stored p_crack}."""
    with open_workspace(folder, workspace) as ws:
        ws.sync(scan_folder(folder))
        items = [(row.id, row.path) for row in ws.rows()]
        got = {}

        def keep(pairs, done, total):
            for image_id, p in pairs:
                got[items[p.index][1]] = (p.hash, p.p_crack, p.features, p.error, p.tiles is not None)

        report = classify_into_workspace(ws, classifier, items, on_batch=keep,
                                         source=source_of(classifier) if source_of else None, **kwargs)
        stored = {row.path: row.p_crack for row in ws.rows(classifier.key)}
    return got, report, stored


def assert_same(by_workers, by_threads):
    assert by_workers.keys() == by_threads.keys()
    for path, (h, p, features, error, tiled) in by_threads.items():
        wh, wp, wfeatures, werror, wtiled = by_workers[path]
        assert (wh, werror, wtiled) == (h, error, tiled), path
        if p is None:
            assert wp is None, path
        else:
            assert wp == pytest.approx(p, abs=1e-6), path
        if features is not None:
            np.testing.assert_allclose(wfeatures, features, atol=1e-5)


@pytest.mark.parametrize("lead", [0, worker_processes.LEAD_AT_MOST])  # 0: every chunk the worker's
def test_workers_give_what_the_threaded_pipeline_gives_and_the_workspace_stores_it(model, tmp_path, monkeypatch,
                                                                                    lead):
    monkeypatch.setattr(worker_processes, "LEAD_AT_MOST", lead)
    folder = tmp_path / "f"
    write_images(folder, 5 * CHUNK + 3, seed=1)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (folder / "empty.png").write_bytes(b"")
    classifier = Classifier(model)
    by_threads, _, stored_threads = classified(folder, tmp_path / "t.sqlite", classifier)
    with SmallImageWorkers(1) as workers:
        by_workers, report, stored = classified(folder, tmp_path / "w.sqlite", classifier, workers.source)
        assert workers.note == ""
    assert_same(by_workers, by_threads)
    assert report.classified == 5 * CHUNK + 3 and len(report.errors) == 2
    assert {path for path, _ in report.errors} == {"broken.jpg", "empty.png"}
    assert stored == pytest.approx(stored_threads)
    assert sum(p is not None for p in stored.values()) == 5 * CHUNK + 3
    assert all(f is not None for _, p, f, _, _ in by_workers.values() if p is not None)  # for the site head


def test_from_the_first_large_photo_on_the_threaded_pipeline_takes_over(model, tmp_path):
    folder = tmp_path / "f"
    write_images(folder, 2 * CHUNK + 2, seed=2, prefix="a")  # sorted first: the workers' part
    grid_mosaic(np.array([[False, True, False], [False, True, False]]), seed=3).save(folder / "b_photo.png")
    write_images(folder, 3, seed=4, prefix="c")  # after it: the threaded pipeline's, small ones included
    crack_patch(5).save(folder / "d_patch.png")
    classifier = Classifier(model)
    by_threads, _, _ = classified(folder, tmp_path / "t.sqlite", classifier)
    with SmallImageWorkers(1) as workers:
        by_workers, report, _ = classified(folder, tmp_path / "w.sqlite", classifier, workers.source)
        assert all(proc.poll() is not None for proc in workers.procs)  # stopped at the switch, not at the end
    assert_same(by_workers, by_threads)
    assert by_workers["b_photo.png"][4] and report.tiled == 1 and report.classified == len(by_threads)


def test_a_worker_killed_mid_folder_leaves_the_rest_to_this_process_and_says_so(model, tmp_path, monkeypatch):
    folder = tmp_path / "f"
    write_images(folder, 12 * CHUNK, seed=6)
    classifier = Classifier(model)
    monkeypatch.setattr(worker_processes, "LEAD_AT_MOST", 0)  # every chunk the worker's: it has work when killed
    by_threads, _, _ = classified(folder, tmp_path / "t.sqlite", classifier)
    with SmallImageWorkers(1) as workers:
        source = workers.source(classifier)

        def killing_source(paths, cancel=None):
            for n, batch in enumerate(source(paths, cancel)):
                if n == 2:
                    os.kill(workers.procs[0].pid, signal.SIGKILL)
                yield batch

        by_workers, report, stored = classified(folder, tmp_path / "w.sqlite", classifier, lambda c: killing_source)
    assert "a worker process stopped (killed by SIGKILL); the rest was classified in this process" == workers.note
    assert_same(by_workers, by_threads)
    assert report.classified == 12 * CHUNK and sum(p is not None for p in stored.values()) == 12 * CHUNK


def test_a_model_file_the_workers_cannot_load_leaves_the_folder_to_this_process(model, tmp_path):
    folder = tmp_path / "f"
    write_images(folder, 4 * CHUNK, seed=7)
    classifier = Classifier(model)  # loaded here; then the file is cut short, as a half-copied update would
    model.write_bytes(model.read_bytes()[:100])
    with SmallImageWorkers(1) as workers:
        by_workers, report, _ = classified(folder, tmp_path / "w.sqlite", classifier, workers.source)
    assert workers.note.startswith("a worker process failed (ModelError: ") and "tinyf.onnx" in workers.note
    assert report.classified == 4 * CHUNK and all(p is not None for _, p, _, _, _ in by_workers.values())


def test_cancel_stops_between_chunks_and_keeps_what_was_done(model, tmp_path):
    folder = tmp_path / "f"
    write_images(folder, 40 * CHUNK, seed=8)
    classifier = Classifier(model)
    cancel = threading.Event()
    with SmallImageWorkers(1) as workers:
        source = workers.source(classifier)

        def cancelling_source(paths, c=None):
            for n, batch in enumerate(source(paths, c)):
                if n == 3:
                    cancel.set()
                yield batch

        got, report, stored = classified(folder, tmp_path / "w.sqlite", classifier, lambda c: cancelling_source,
                                         cancel=cancel)
    assert report.cancelled and 4 * CHUNK <= report.classified < 40 * CHUNK
    assert sum(p is not None for p in stored.values()) == report.classified  # stored before returning


def test_the_command_uses_workers_only_on_folders_worth_their_start(model, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "f"
    write_images(folder, 3 * CHUNK, seed=9)
    started, used = [], []
    original_init, original_source = SmallImageWorkers.__init__, SmallImageWorkers.source

    def counting_init(self, count):
        original_init(self, count)
        started.append(self)

    def counting_source(self, classifier):
        used.append(self)
        return original_source(self, classifier)

    monkeypatch.setattr(SmallImageWorkers, "__init__", counting_init)
    monkeypatch.setattr(SmallImageWorkers, "source", counting_source)
    monkeypatch.setenv("CRACKDESK_WORKER_PROCESSES", "1")
    assert main(["classify", str(folder), "--model", str(model), "--csv", str(tmp_path / "few.csv")]) == 0
    # 24 images: the worker started first thing was stopped, the threaded pipeline classified them
    assert len(started) == 1 and used == [] and started[0].procs[0].poll() is not None
    monkeypatch.setattr(worker_processes, "MIN_IMAGES", 10)
    assert main(["classify", str(folder), "--model", str(model), "--csv", str(tmp_path / "many.csv")]) == 0
    assert len(started) == 2 and used == [started[1]]  # the one started first thing, kept
    assert (tmp_path / "many.csv").read_text() == (tmp_path / "few.csv").read_text()
    assert "worker" not in capsys.readouterr().err  # nothing to say when all went well
    with FolderSession.open(folder) as session:
        assert all(row.p_crack is not None for row in session.rows(Classifier(model).key))
    assert main(["classify", str(folder), "--model", str(model), "--unclassified"]) == 0
    assert len(started) == 2  # --unclassified starts none until it knows it has enough to do
    monkeypatch.setenv("CRACKDESK_WORKER_PROCESSES", "0")  # the override: threads always
    assert main(["classify", str(folder), "--model", str(model)]) == 0 and len(started) == 2
    assert all(w.procs[0].poll() is not None for w in started)


@pytest.fixture(scope="module")
def folder_worth_workers(tmp_path_factory):
    """3,000 hard links to one 227x227 JPEG: a few seconds' work for the shipped default, written in milliseconds."""
    from crackdesk.core.demo import concrete_image

    folder = tmp_path_factory.mktemp("many")
    concrete_image(0, True).save(folder / "source.jpg", quality=90)
    for i in range(3000):
        os.link(folder / "source.jpg", folder / f"{i:05d}.jpg")
    return folder


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL])
def test_ctrl_c_or_a_kill_of_the_command_leaves_no_worker_behind(folder_worth_workers, tmp_path, how):
    workspace = tmp_path / "ws.sqlite"
    env = dict(os.environ, CRACKDESK_WORKER_PROCESSES="1")
    command = subprocess.Popen([sys.executable, "-m", "crackdesk", "classify", str(folder_worth_workers),
                                "--workspace", str(workspace)], env=env, stderr=subprocess.PIPE, text=True,
                               preexec_fn=as_in_a_terminal)
    try:
        workers = []
        deadline = time.monotonic() + 60
        while not workers and time.monotonic() < deadline and command.poll() is None:
            workers = children(command.pid, "_classify-worker")
            time.sleep(0.02)
        assert workers, "no worker process was started"
        while not _stored(workspace) and time.monotonic() < deadline and command.poll() is None:
            time.sleep(0.02)  # until the run is well under way: its first results are on disk
        assert command.poll() is None, "the run ended before it could be interrupted"
        command.send_signal(how)
        err = command.communicate(timeout=60)[1]
    finally:
        if command.poll() is None:
            command.kill()
    if how == signal.SIGINT:  # the command's own handling: one line, no traceback, what finished kept
        assert command.returncode == 130 and "Traceback" not in err and "crackdesk: interrupted" in err, err
        assert 0 < _stored(workspace) < 3001
    deadline = time.monotonic() + 10  # a killed parent's workers see their input close, and exit
    while [pid for pid in workers if not gone(pid)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(gone(pid) for pid in workers)


def _stored(workspace) -> int:
    """Images with a stored content hash (committed with their predictions, FLUSH_SECONDS apart)."""
    return workspace_count(workspace, "SELECT COUNT(*) FROM images WHERE hash IS NOT NULL")

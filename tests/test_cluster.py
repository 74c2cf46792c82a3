"""Cluster mode on a real one-node Ray cluster (tests/raycluster.py): the same files, probabilities, tiles and
unreadable reasons as a local run, --ship-bytes, evaluate, a worker killed mid-job, Ctrl-C; and the messages
when Ray cannot be used."""

from __future__ import annotations

import csv
import json
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
from factories import make_feature_model, write_images
from PIL import Image
from processes import as_in_a_terminal, workspace_count
from raycluster import ROOT, RayHead, unavailable_reason

from crackdesk.cluster import require_ray
from crackdesk.cluster.worker import ROWS_PER_OUTPUT
from crackdesk.core.errors import CrackDeskError
from crackdesk.core.hashing import bytes_hash
from crackdesk.core.photo_verdict import photo_verdict
from crackdesk.core.store import open_workspace
from crackdesk.core.features import decode_matrix
from crackdesk.core.tiling import tiles_from_rows

MODEL_KEY = "tinyf@0.1"
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


@pytest.fixture(scope="module")
def head():
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    cluster = RayHead(cpus=2).start()
    yield cluster
    cluster.stop()
    assert cluster.leftovers() == []


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """The tiny contrast detector with a features output, so features travel back and are stored too."""
    return make_feature_model(tmp_path_factory.mktemp("model") / "tiny.onnx")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """40 small photos, two large ones (600x500 and 500x700: 3x3 and 3x4 windows of the default 227 px patch),
    a corrupt file and a truncated one."""
    folder = tmp_path_factory.mktemp("site") / "photos"
    write_images(folder, 40)
    rng = np.random.default_rng(1)
    for name, (w, h) in (("large_a.jpg", (600, 500)), ("large_b.jpg", (500, 700))):
        a = rng.normal(170, 12, (h, w, 3)).clip(0, 255).astype(np.uint8)
        a[100:110, :, :] = 20  # a dark line: some windows see a crack
        Image.fromarray(a).save(folder / name, quality=92)
    (folder / "corrupt.jpg").write_bytes(b"this is not a JPEG")
    good = (folder / "img_000.png").read_bytes()
    (folder / "truncated.png").write_bytes(good[: len(good) // 2])
    return folder


def run_local(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "crackdesk", *map(str, args)], env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def read_csv(path) -> dict[str, tuple[str, float]]:
    return {r["path"]: (r["label"], float(r["p_crack"])) for r in csv.DictReader(open(path))}


def stored(folder, workspace) -> dict[str, dict]:
    """path -> p_crack, tiles and feature bytes as stored in the workspace file of `folder`."""
    ws = open_workspace(folder, workspace)
    try:
        rows = {r.path: r for r in ws.rows(MODEL_KEY)}
        out = {path: {"p": r.p_crack, "hash": r.hash,
                      "tiles": ws.tile_results(r.hash, MODEL_KEY) if r.hash else []} for path, r in rows.items()}
    finally:
        ws.close()
    with sqlite3.connect(workspace) as db:
        features = dict(db.execute("SELECT hash, vec FROM features WHERE model=?", (MODEL_KEY,)))
        windows = {h: (w, v) for h, w, v in db.execute("SELECT hash, windows, vecs FROM window_features WHERE model=?",
                                                      (MODEL_KEY,))}
    for row in out.values():
        row["features"] = features.get(row["hash"])
        row["windows"] = windows.get(row["hash"])
    return out


def unreadable_lines(stderr: str) -> set[str]:
    return {line for line in stderr.splitlines() if line.startswith("unreadable:")}


def assert_same_as_local(folder, local_ws, local_csv, cluster_ws, cluster_csv):
    a, b = read_csv(local_csv), read_csv(cluster_csv)
    assert set(a) == set(b) and len(a) == 42
    for path in a:
        assert a[path][0] == b[path][0], path
        assert abs(a[path][1] - b[path][1]) < 1e-5, path
    sa, sb = stored(folder, local_ws), stored(folder, cluster_ws)
    assert set(sa) == set(sb)
    for path, row in sa.items():
        other = sb[path]
        assert row["hash"] == other["hash"], path
        if row["p"] is None:
            assert other["p"] is None, path
            continue
        assert abs(row["p"] - other["p"]) < 1e-5, path
        assert len(row["tiles"]) == len(other["tiles"]), path
        for ta, tb in zip(sorted(row["tiles"]), sorted(other["tiles"])):
            assert ta[:4] == tb[:4] and abs(ta[4] - tb[4]) < 1e-5, path
        assert (row["features"] is None) == (other["features"] is None), path
        if row["features"] is not None:  # encoded the same way from float32 vectors equal to ~1e-6
            assert len(row["features"]) == len(other["features"])
        assert (row["windows"] is None) == (other["windows"] is None), path  # a large photo's windows, for a site head
        if row["windows"] is not None:
            assert row["windows"][0] == other["windows"][0], path  # the same windows...
            mine, theirs = (decode_matrix(w[1]) for w in (row["windows"], other["windows"]))
            assert np.abs((mine[0] * mine[1][:, None] + mine[2][:, None])  # ...with the same features (8-bit codes)
                          - (theirs[0] * theirs[1][:, None] + theirs[2][:, None])).max() <= 2 * mine[1].max() + 1e-6
    return sb


def test_classify_on_the_cluster_matches_the_local_run(head, model, site, tmp_path):
    local = run_local("classify", site, "--model", model, "--workspace", tmp_path / "local.sqlite",
                      "--csv", tmp_path / "local.csv")
    assert local.returncode == 0, local.stderr
    remote = head.run("classify", site, "--model", model, "--workspace", tmp_path / "cluster.sqlite",
                      "--csv", tmp_path / "cluster.csv", "--cluster", head.address)
    assert remote.returncode == 0, remote.stderr
    assert "Traceback" not in remote.stderr
    assert "photos read by the workers from the shared path" in remote.stderr
    assert f"on the Ray cluster at {head.address}" in remote.stderr
    assert "44 images: " in remote.stderr and "2 unreadable" in remote.stderr
    # Unreadable files are reported with the same reason as locally.
    assert unreadable_lines(remote.stderr) == unreadable_lines(local.stderr)
    assert len(unreadable_lines(local.stderr)) == 2
    rows = assert_same_as_local(site, tmp_path / "local.sqlite", tmp_path / "local.csv",
                                tmp_path / "cluster.sqlite", tmp_path / "cluster.csv")
    # Every photo's prediction is stored; the large ones with their windows (and no features), the small
    # ones with their features.
    assert sum(r["p"] is not None for r in rows.values()) == 42
    assert len(rows["large_a.jpg"]["tiles"]) == 9 and len(rows["large_b.jpg"]["tiles"]) == 12
    tiles = rows["large_a.jpg"]["tiles"]  # its P is the photo rule's over its windows (core/photo_verdict.py)
    grid = tiles_from_rows(tiles, max(t[0] + t[2] for t in tiles), max(t[1] + t[3] for t in tiles), 0.5).probs
    assert rows["large_a.jpg"]["p"] == pytest.approx(photo_verdict(grid, 0.5).p_crack)
    assert rows["large_a.jpg"]["features"] is None and rows["img_001.png"]["features"] is not None
    assert len(rows["large_a.jpg"]["windows"][0]) == 9 * 4 and rows["img_001.png"]["windows"] is None
    assert rows["img_001.png"]["tiles"] == []


STREAM_CHILD = """
import json, sys
from pathlib import Path
from crackdesk.cluster import connected
from crackdesk.cluster.runner import ClusterSource
from crackdesk.core.inference import Classifier
from crackdesk.core.models import load_model
address, model, folder = sys.argv[1:4]
with connected(address):
    source = ClusterSource(Classifier(load_model(Path(model), spinning=False)))
    print(json.dumps([[len(p.tiles) for p in done] for done in source(sorted(Path(folder).glob("*.jpg")))]))
"""


def test_camera_photos_come_back_as_they_finish_not_in_one_block(head, model, tmp_path):
    """Ray Data used to merge a task's output into one block of up to 128 MiB: all the windows of a block of
    photos then went through the model, and came back, at once (a 24-photo job's first result after 42 s of 42)."""
    folder = tmp_path / "camera"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for i in range(3):
        Image.fromarray(rng.normal(170, 12, (1800, 2400, 3)).clip(0, 255).astype(np.uint8)).save(
            folder / f"cam_{i}.jpg", quality=90)
    child = subprocess.run(head.ns([sys.executable, "-c", STREAM_CHILD, head.address, str(model), str(folder)]),
                           env=head.env, capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, child.stderr[-3000:]
    arrivals = json.loads(child.stdout.strip().splitlines()[-1])
    windows = [n for done in arrivals for n in done]
    assert len(windows) == 3 and min(windows) > ROWS_PER_OUTPUT, windows  # each photo spans blocks
    assert len(arrivals) >= 2, f"every photo arrived in one batch: {arrivals}"


def test_ship_bytes_sends_the_photos_and_gives_the_same_results(head, model, site, tmp_path):
    local = run_local("classify", site, "--model", model, "--workspace", tmp_path / "local.sqlite",
                      "--csv", tmp_path / "local.csv")
    assert local.returncode == 0, local.stderr
    remote = head.run("classify", site, "--model", model, "--workspace", tmp_path / "cluster.sqlite",
                      "--csv", tmp_path / "cluster.csv", "--cluster", head.address, "--ship-bytes")
    assert remote.returncode == 0, remote.stderr
    assert "photos shipped from this machine" in remote.stderr
    assert unreadable_lines(remote.stderr) == unreadable_lines(local.stderr)
    assert_same_as_local(site, tmp_path / "local.sqlite", tmp_path / "local.csv",
                         tmp_path / "cluster.sqlite", tmp_path / "cluster.csv")


def test_a_worker_uses_the_shipped_bytes_not_the_path(site):
    """The worker function takes the row's bytes when it carries them: a path that exists nowhere works."""
    from crackdesk.cluster.worker import prepare_batch
    from crackdesk.core.models import load_model

    info = load_model(make_feature_model(site.parent / "m.onnx")).info
    data = (site / "img_000.png").read_bytes()
    large = (site / "large_a.jpg").read_bytes()
    batch = {"index": np.array([7, 8, 9]), "path": np.array(["/nowhere/a.png", "/nowhere/b.jpg", "/nowhere/c.png"]),
             "data": np.array([data, large, b"junk"], dtype=object)}
    blocks = list(prepare_batch(batch, info))
    index = np.concatenate([b["index"] for b in blocks])
    nparts = np.concatenate([b["nparts"] for b in blocks])
    assert index.tolist() == [7] + [8] * 9 + [9] and nparts.tolist() == [1] + [9] * 9 + [0]
    facts = pickle.loads(blocks[0]["info"][0])
    assert facts["hash"] == bytes_hash(data) and facts["error"] is None and facts["size"] == (64, 64)
    assert pickle.loads(blocks[-1]["info"][-1])["error"].startswith("not an image")
    # Without bytes, the same row reads the path, and says so when it cannot.
    missing = list(prepare_batch({"index": np.array([0]), "path": np.array(["/nowhere/a.png"])}, info))
    assert pickle.loads(missing[0]["info"][0])["error"].startswith("file not found")


def test_evaluate_on_the_cluster_gives_the_local_metrics(head, model, tmp_path):
    folder = tmp_path / "labelled"
    write_images(folder / "Positive", 12, crack_every=1)
    write_images(folder / "Negative", 12, seed=3, crack_every=1000)  # only image 0 has a line
    (folder / "Negative" / "broken.jpg").write_text("oops")
    local = run_local("evaluate", folder, "--model", model, "--json")
    remote = head.run("evaluate", folder, "--model", model, "--json", "--cluster", head.address)
    assert local.returncode == 0 and remote.returncode == 0, (local.stderr, remote.stderr)
    a, b = json.loads(local.stdout), json.loads(remote.stdout)
    assert set(a) == set(b) and a["unreadable"] == b["unreadable"] == 1
    for key, value in a.items():
        assert b[key] == (pytest.approx(value, abs=1e-9) if isinstance(value, float) else value), key


def many_photos(folder, count: int):
    return write_images(folder, count, size=(128, 128))


def predictions_stored(workspace) -> int:
    return workspace_count(workspace, "SELECT COUNT(*) FROM predictions")


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def model_actor_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-f", r"MapBatches\(ModelStage\)"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_a_model_worker_killed_mid_job_is_replaced_and_nothing_is_stored_twice(head, model, tmp_path):
    folder = tmp_path / "many"
    count = 1500
    many_photos(folder, count)
    workspace = tmp_path / "ws.sqlite"
    driver = subprocess.Popen(head.crackdesk("classify", folder, "--model", model, "--workspace", workspace,
                                             "--csv", tmp_path / "out.csv", "--cluster", head.address),
                              env=head.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              preexec_fn=as_in_a_terminal)
    try:
        wait_for(lambda: predictions_stored(workspace) > 0 or driver.poll() is not None, 120, "the first results")
        victims = model_actor_pids()
        assert driver.poll() is None and victims, "the job ended before a worker could be killed"
        os.kill(victims[0], signal.SIGKILL)
        killed_at = predictions_stored(workspace)
        _, stderr = driver.communicate(timeout=180)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, stderr
    assert killed_at < count, "the worker died after the job had finished"
    rows = list(csv.DictReader(open(tmp_path / "out.csv")))
    assert len(rows) == count and len({r["path"] for r in rows}) == count
    assert predictions_stored(workspace) == count
    assert f"{count} images: " in stderr and "0 unreadable" in stderr


def test_ctrl_c_stores_what_finished_and_leaves_the_cluster_running(head, model, site, tmp_path):
    folder = tmp_path / "many"
    count = 1500
    many_photos(folder, count)
    workspace = tmp_path / "ws.sqlite"
    driver = subprocess.Popen(head.crackdesk("classify", folder, "--model", model, "--workspace", workspace,
                                             "--cluster", head.address),
                              env=head.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              preexec_fn=as_in_a_terminal)
    try:
        wait_for(lambda: predictions_stored(workspace) > 0 or driver.poll() is not None, 120, "the first results")
        driver.send_signal(signal.SIGINT)
        _, stderr = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "interrupted" in stderr
    finished = predictions_stored(workspace)
    assert 0 < finished <= count
    # The cluster is still there for the next job.
    again = head.run("classify", site, "--model", model, "--workspace", tmp_path / "again.sqlite",
                     "--cluster", head.address)
    assert again.returncode == 0, again.stderr


DRIVER_CLOSED_LATE = """
import sys
from pathlib import Path
import ray
from crackdesk.cluster import cluster_source
from crackdesk.core.inference import Classifier
address, model, folder = sys.argv[1:]
try:
    with cluster_source(address, Classifier(model)) as source:
        jobs = source(sorted(Path(folder).iterdir()))
        next(jobs)
        raise KeyboardInterrupt  # Ctrl-C while the consumer stores a batch: the job is left suspended
except KeyboardInterrupt:
    pass
del jobs  # the garbage collector's turn
print("Ray connected after the job was dropped:", ray.is_initialized())
"""


def test_a_job_closed_after_the_driver_disconnected_does_not_start_a_local_ray(head, model, tmp_path):
    """Ray's calls after ray.shutdown() start a local Ray instance of their own (which, among other things, left
    ~/.ray/auth_token behind and turned token authentication on for every later cluster on the machine)."""
    many_photos(tmp_path / "many", 600)
    result = subprocess.run(head.ns([sys.executable, "-c", DRIVER_CLOSED_LATE, head.address, str(model),
                                     str(tmp_path / "many")]), env=head.env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert result.stdout.strip() == "Ray connected after the job was dropped: False"


def test_an_address_nobody_answers_on_is_one_line(head, model, site, tmp_path):
    result = head.run("classify", site, "--model", model, "--workspace", tmp_path / "ws.sqlite",
                      "--cluster", "127.0.0.1:1", timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("crackdesk:")]
    assert len(lines) == 1 and "cannot connect to the Ray cluster at 127.0.0.1:1" in lines[0]


def test_the_bundle_says_how_to_run_cluster_mode(monkeypatch):
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    with pytest.raises(CrackDeskError) as e:
        require_ray()
    message = str(e.value)
    assert "\n" not in message and "bundle does not include Ray" in message
    assert "pip install 'crackdesk[cluster]'" in message and "pip install -e '.[cluster]'" in message


def test_without_ray_installed_the_message_says_how_to_install_it(monkeypatch):
    monkeypatch.delattr(sys, "frozen", raising=False)
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets when it is not installed
    with pytest.raises(CrackDeskError) as e:
        require_ray()
    assert "Ray is not installed" in str(e.value) and "pip install 'crackdesk[cluster]'" in str(e.value)


def test_ship_bytes_without_a_cluster_is_refused(tiny_model, site, tmp_path):
    result = run_local("classify", site, "--model", tiny_model, "--workspace", tmp_path / "w.sqlite", "--ship-bytes")
    assert result.returncode == 1 and "--ship-bytes only applies with --cluster" in result.stderr

"""Smoke test of the PyInstaller bundle (`make bundle-test` builds it first; CI runs it as its own step).

The executable runs with a clean environment: no virtualenv on PATH, no PYTHONPATH, user dirs in tmp; its
GUI runs on a real X server (Xvfb) with Qt's xcb platform, as on a desktop."""

import csv
import subprocess
import time
from pathlib import Path

import pytest
from factories import write_images
from processes import children
from xdisplay import assert_window_shown_then_quit, run_gui

from crackdesk.core.demo import write_demo_folder
from crackdesk.core.inference import classify_all
from crackdesk.core.models import ModelRegistry

pytestmark = pytest.mark.bundle
ROOT = Path(__file__).resolve().parents[1]
EXE = ROOT / "dist" / "crackdesk" / "crackdesk"


@pytest.fixture(scope="module")
def clean_env(tmp_path_factory):
    if not EXE.exists():
        pytest.skip(f"no bundle at {EXE}: run `make bundle` first")
    home = tmp_path_factory.mktemp("home")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "QT_QPA_PLATFORM": "offscreen",
           "LANG": "C.UTF-8"}
    weights = ROOT.parent / "shared" / "weights" / "mobilenet_v2_imagenet.pth"
    if weights.exists():
        env["CRACKDESK_MOBILENET_WEIGHTS"] = str(weights)
    return env


@pytest.fixture(scope="module")
def run(clean_env):
    def run(*args, timeout=300):
        result = subprocess.run([str(EXE), *map(str, args)], env=clean_env, cwd=clean_env["HOME"],
                                capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, f"{args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
        return result

    return run


def test_version(run):
    out = run("--version").stdout
    for part in ("crackdesk", "onnxruntime", "PySide6", "torch"):
        assert part in out and f"{part} not installed" not in out


def test_models_are_bundled(run):
    out = run("models").stdout
    assert "mobilenetv2" in out and "cnn" in out and "shipped" in out


def test_classify_gives_the_same_probabilities_as_the_package(run, tmp_path):
    folder = tmp_path / "demo"
    write_demo_folder(folder, count=12, seed=5)
    out = tmp_path / "out.csv"
    run("classify", folder, "--model", "cnn", "--csv", out)
    bundled = {r["path"]: float(r["p_crack"]) for r in csv.DictReader(out.open())}
    package = {str(p.path): p.p_crack for p in classify_all(ModelRegistry().find("cnn").path,
                                                             sorted(folder.rglob("*.jpg")))}
    assert len(bundled) == 12
    for path, p in package.items():
        assert bundled[path] == pytest.approx(p, abs=1e-5)


def test_tiny_training_run_then_classify(run, tmp_path):
    data = tmp_path / "data"
    write_images(data / "Positive", 24, crack_every=1, size=(48, 48))
    write_images(data / "Negative", 24, seed=9, crack_every=10**6, size=(48, 48))
    model = tmp_path / "tiny-cnn.onnx"
    run("train", data, "--arch", "cnn", "--input-size", "32", "--epochs", "1", "--out", model, timeout=600)
    assert model.exists()
    run("classify", data / "Positive", "--model", model, "--workspace", tmp_path / "ws.sqlite")


def test_gui_shows_its_window_on_an_x_display_and_quits(clean_env, x_server, tmp_path):
    folder = tmp_path / "demo"
    write_demo_folder(folder, count=8)
    gui = run_gui(x_server, [str(EXE), "gui", str(folder), "--quit-after", "3"], x_server.env(clean_env),
                  tmp_path / "gui.log", timeout=120)
    assert_window_shown_then_quit(x_server, gui)


def test_site_adaptation_labels_suggest_and_export_model(run, tmp_path):
    """The bundle adapts a folder, suggests, exports the site model and classifies with it: no torch needed."""
    from factories import make_adaptable_model

    model = make_adaptable_model(tmp_path / "models")
    folder = tmp_path / "demo"
    write_demo_folder(folder, count=12, seed=6)
    run("classify", folder, "--model", model)
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.jpg"))  # the demo has sub-folders
    assert len(names) == 12
    labels = tmp_path / "labels.csv"
    with labels.open("w", newline="") as f:
        csv.writer(f).writerows([("path", "label")] + [(n, "crack" if i % 2 else "no_crack")
                                                             for i, n in enumerate(names[:6])])
    run("labels", "import", folder, labels)
    assert "site-adapted on 6 labels" in run("suggest", folder).stderr
    exported = tmp_path / "site.onnx"
    run("export-model", folder, "--out", exported)
    assert exported.with_name("site.memory.npz").is_file()
    out = tmp_path / "site.csv"
    run("classify", folder, "--model", exported, "--no-adapt", "--csv", out)
    assert len(list(csv.DictReader(out.open()))) == 12


def test_cluster_mode_says_how_to_run_it_from_a_python_install(clean_env, tmp_path):
    """The bundle carries no Ray (crackdesk.spec excludes it): --cluster is one line saying where it works."""
    folder = tmp_path / "photos"
    write_images(folder, 3)
    result = subprocess.run([str(EXE), "classify", str(folder), "--cluster", "auto"], env=clean_env,
                            cwd=clean_env["HOME"], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("crackdesk:")]
    assert len(lines) == 1, result.stderr
    assert "bundle does not include Ray" in lines[0] and "pip install 'crackdesk[cluster]'" in lines[0]


def test_the_default_model_stores_camera_photos_windows_in_its_basis(run, tmp_path):
    """Large photos classified by the bundle with the shipped default: their windows' features are stored in the
    basis of its replay memory (decision 48), which the bundle projects with onnxruntime alone."""
    import sqlite3

    from PIL import Image

    from crackdesk.core.features import decode_matrix
    from crackdesk.core.memory import memory_path
    from crackdesk.core.projection import load_projection

    folder = tmp_path / "photos"
    write_demo_folder(folder, count=3, seed=7)
    for path in folder.rglob("*.jpg"):  # enlarged past two windows a side: judged by its windows
        Image.open(path).convert("RGB").resize((480, 480)).save(path, quality=92)
    run("classify", folder, "--exact")  # every window through the model: none settled by the screen
    entry = ModelRegistry().find(None)
    fingerprint = load_projection(memory_path(entry.path), entry.info.features["dim"]).fingerprint
    with sqlite3.connect(folder / ".crackdesk" / "workspace.sqlite") as db:
        blobs = [row[0] for row in db.execute("SELECT vecs FROM window_features WHERE model=?", (entry.key,))]
    assert len(blobs) == 3 and all(decode_matrix(blob)[3] == fingerprint for blob in blobs)


def test_a_folder_of_patches_is_classified_with_a_worker_process_as_from_source(clean_env, tmp_path):
    """A folder worth it (decision 51) runs its small images in a worker process, which the bundle starts by
    re-running its own executable; the results are those of the threaded pipeline (no workers)."""
    folder = tmp_path / "demo"
    write_demo_folder(folder, count=1000, seed=8)
    outputs = {}
    for workers in ("1", "0"):
        env = dict(clean_env, CRACKDESK_WORKER_PROCESSES=workers)
        out = tmp_path / f"workers-{workers}.csv"
        command = subprocess.Popen([str(EXE), "classify", str(folder), "--csv", str(out), "--workspace",
                                    str(tmp_path / f"ws-{workers}.sqlite")], env=env, cwd=clean_env["HOME"],
                                   stderr=subprocess.PIPE, text=True)
        seen = set()
        while command.poll() is None:
            seen.update(children(command.pid, "_classify-worker"))
            time.sleep(0.01)
        err = command.communicate()[1]
        assert command.returncode == 0, err
        assert ("1000 images:" in err) and "note:" not in err, err
        assert len(seen) == int(workers), (workers, seen)
        outputs[workers] = {r["path"]: float(r["p_crack"]) for r in csv.DictReader(out.open())}
    assert len(outputs["1"]) == 1000
    assert outputs["1"].keys() == outputs["0"].keys()
    for path, p in outputs["0"].items():
        assert outputs["1"][path] == pytest.approx(p, abs=1e-6)

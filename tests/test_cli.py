import csv
import json
import subprocess
import sys

import pytest
from factories import make_tiny_model, tiny_info, write_images

from crackdesk.cli.main import main
from crackdesk.core.demo import read_truth, write_demo_folder
from crackdesk.core.store import open_workspace


def run_cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "crackdesk", *map(str, args)], capture_output=True, text=True,
                          timeout=120, **kw)


def test_classify_writes_csv_and_workspace(tmp_path, tiny_model):
    folder = tmp_path / "site"
    write_images(folder / "a", 5)
    write_images(folder / "b", 4, seed=1)
    (folder / "b" / "broken.jpg").write_text("oops")
    out = tmp_path / "out.csv"
    result = run_cli("classify", folder, "--model", tiny_model, "--csv", out)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["path", "label", "p_crack", "model"]
    assert len(rows) == 9 and {r["label"] for r in rows} <= {"crack", "no_crack"}
    assert all(r["model"] == "tiny@0.1" for r in rows)
    assert "broken.jpg: not an image" in result.stderr
    assert "10 images" in result.stderr and "1 unreadable" in result.stderr and "images/s" in result.stderr
    ws = open_workspace(folder)
    stored = {r.path: r.p_crack for r in ws.rows("tiny@0.1")}
    for r in rows:
        rel = r["path"][len(str(folder)) + 1:]
        assert stored[rel] == pytest.approx(float(r["p_crack"]), abs=1e-6)


def test_classify_threshold_and_workspace_options(tmp_path, tiny_model):
    folder = tmp_path / "site"
    write_images(folder, 4)
    ws_file = tmp_path / "ws.sqlite"
    out = tmp_path / "o.csv"
    assert main(["classify", str(folder), "--model", str(tiny_model), "--threshold", "0.001",
                 "--workspace", str(ws_file), "--csv", str(out)]) == 0
    assert {r["label"] for r in csv.DictReader(out.open())} == {"crack"}
    assert ws_file.exists() and not (folder / ".crackdesk").exists()


def test_exit_status(tmp_path, tiny_model, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["classify", str(empty), "--model", str(tiny_model)]) == 1
    assert "no images found" in capsys.readouterr().err
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.jpg").write_text("x")
    assert main(["classify", str(junk), "--model", str(tiny_model)]) == 1  # nothing could be read
    assert main(["classify", str(tmp_path / "missing"), "--model", str(tiny_model)]) == 1
    assert "folder not found" in capsys.readouterr().err
    bad_model = tmp_path / "bad.onnx"
    bad_model.write_text("x")
    assert main(["classify", str(junk), "--model", str(bad_model)]) == 1
    assert "bad.onnx: not a valid ONNX model" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["classify", str(junk), "--threshold", "2"])
    assert e.value.code == 2


def test_evaluate_json(tmp_path, tiny_model, capsys):
    data = tmp_path / "data"
    write_images(data / "Positive", 6, crack_every=1)
    write_images(data / "no_crack", 6, seed=3, crack_every=10**6)
    (data / "Positive" / "bad.jpg").write_bytes(b"")
    assert main(["evaluate", str(data), "--model", str(tiny_model), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert {"accuracy", "precision", "recall", "f1", "auc", "n", "tp", "fp", "tn", "fn", "unreadable"} <= set(m)
    assert m["n"] == 12 and m["unreadable"] == 1 and m["tp"] + m["fn"] == 6
    assert m["accuracy"] == (m["tp"] + m["tn"]) / 12


def test_evaluate_text_and_bad_layout(tmp_path, tiny_model, capsys):
    data = tmp_path / "data"
    write_images(data / "cracked", 2, crack_every=1)
    write_images(data / "uncracked", 2, crack_every=10**6)
    assert main(["evaluate", str(data), "--model", str(tiny_model)]) == 0
    assert "accuracy" in capsys.readouterr().out
    assert main(["evaluate", str(tmp_path / "data" / "cracked"), "--model", str(tiny_model)]) == 1
    assert "no class folders found" in capsys.readouterr().err


def test_models_lists_shipped_and_user_models(tmp_path, monkeypatch, capsys):
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    make_tiny_model(shipped / "cnn.onnx", info=tiny_info(name="cnn", version="1.0.0"))
    monkeypatch.setenv("CRACKDESK_MODELS_DIR", str(shipped))
    assert main(["models", "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["name"] == "cnn" and entry["source"] == "shipped" and entry["preprocessing"]["input_size"] == [32, 32]
    assert main(["models"]) == 0
    assert "cnn" in capsys.readouterr().out


def test_models_says_when_this_cpu_runs_int8_on_the_exact_kernels(tmp_path, monkeypatch, capsys):
    """Without VNNI the int8 fast path is about as fast as float (decision 45): `models` and the Models dialog say
    why."""
    from crackdesk.core import models
    from crackdesk.core.models import ModelRegistry
    from crackdesk.ui.models_dialog import describe_model

    shipped = tmp_path / "shipped"
    shipped.mkdir()
    make_tiny_model(shipped / "fast.onnx", info=tiny_info(name="fast", version="1.0.0", quantized_from="slow@1.0.0"))
    monkeypatch.setenv("CRACKDESK_MODELS_DIR", str(shipped))
    for saturate in (False, True):
        monkeypatch.setattr(models, "int8_sums_saturate", lambda: saturate)
        assert main(["models"]) == 0
        assert ("note: This CPU has no VNNI, so int8 models run on onnxruntime's exact kernels"
                in capsys.readouterr().err) == saturate
        assert ("no VNNI" in describe_model(ModelRegistry().find("fast"))) == saturate  # the Models dialog too


def test_demo_folder_is_deterministic(tmp_path):
    assert main(["demo", str(tmp_path / "a"), "--count", "6"]) == 0
    write_demo_folder(tmp_path / "b", count=6)
    truth = read_truth(tmp_path / "a")
    assert len(truth) == 6
    for rel in truth:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


def test_version_names_the_libraries():
    result = run_cli("--version")
    assert result.returncode == 0
    assert "crackdesk 0.1.0" in result.stdout and "onnxruntime" in result.stdout and "PySide6" in result.stdout


def test_large_photos_are_classified_by_sliding_window(tmp_path, tiny_model):
    """A 5x4-patch photo gets the heatmap's verdict (the photo rule over its tiles) and its tiles are stored."""
    from crackdesk.core.photo_verdict import photo_verdict
    from crackdesk.core.tiling import tiles_from_rows
    from crackdesk.core.demo import concrete_image

    folder = tmp_path / "site"
    folder.mkdir()
    concrete_image(3, True, size=(227 * 5, 227 * 4), cracks=2).save(folder / "photo.jpg", quality=90)
    write_images(folder, 2)
    assert main(["classify", str(folder), "--model", str(tiny_model)]) == 0
    ws = open_workspace(folder)
    rows = {r.path: r for r in ws.rows("tiny@0.1")}
    tiles = ws.tile_results(rows["photo.jpg"].hash, "tiny@0.1")
    assert len(tiles) == 20 and all(w == h == 227 for _, _, w, h, _ in tiles)
    assert rows["photo.jpg"].p_crack == pytest.approx(photo_verdict(tiles_from_rows(tiles, 227 * 5, 227 * 4, 0.5).probs,
                                                                    0.5).p_crack)
    assert ws.tile_results(rows["img_000.png"].hash, "tiny@0.1") == []  # small images are not tiled


def test_new_folders_get_the_int8_default_and_classified_ones_keep_their_model(tmp_path, monkeypatch):
    from crackdesk.core.session import ACTIVE_MODEL

    models = tmp_path / "models"
    models.mkdir()
    make_tiny_model(models / "mobilenetv2.onnx", info=tiny_info(name="mobilenetv2", version="1.0.0"))
    make_tiny_model(models / "mobilenetv2-int8.onnx", info=tiny_info(name="mobilenetv2-int8", version="1.0.0",
                                                                     quantized_from="mobilenetv2@1.0.0"))
    monkeypatch.setenv("CRACKDESK_MODELS_DIR", str(models))

    def models_in(csv_path):
        return {r["model"] for r in csv.DictReader(csv_path.open())}

    new, old = tmp_path / "new", tmp_path / "old"
    write_images(new, 3)
    write_images(old, 3, seed=1)
    assert main(["classify", str(new), "--csv", str(tmp_path / "new.csv")]) == 0
    assert models_in(tmp_path / "new.csv") == {"mobilenetv2-int8@1.0.0"}  # the fast path, for a new folder
    assert main(["classify", str(old), "--model", "mobilenetv2", "--csv", str(tmp_path / "float.csv")]) == 0
    assert models_in(tmp_path / "float.csv") == {"mobilenetv2@1.0.0"}  # the exact float one, one option away
    assert main(["classify", str(old), "--csv", str(tmp_path / "again.csv")]) == 0
    assert models_in(tmp_path / "again.csv") == {"mobilenetv2@1.0.0"}  # remembered by the folder
    ws = open_workspace(old)
    ws.set_meta(ACTIVE_MODEL, None)  # a workspace from before models were remembered per folder
    ws.close()
    assert main(["classify", str(old), "--csv", str(tmp_path / "older.csv")]) == 0
    assert models_in(tmp_path / "older.csv") == {"mobilenetv2@1.0.0"}  # its predictions' model, not the new default


def test_rates_keep_a_decimal_where_whole_numbers_would_hide_it():
    """Camera photos run at 2-5 a second: "2 images/s" would hide a 40% difference."""
    from crackdesk.core.rates import format_rate

    assert [format_rate(r) for r in (0.43, 2.349, 9.96, 10.0, 257.4, 1234.0)] == ["0.4", "2.3", "10.0", "10", "257",
                                                                                  "1,234"]


def test_the_rate_and_eta_follow_the_last_seconds_not_the_whole_run():
    """A first pass at 6 photos/s that slows to 2/s (decision 42: every window after the first label): after 40 s
    at the new speed, the whole-run average (4/s) would put the ETA at half the truth."""
    from crackdesk.core.rates import RATE_WINDOW_S, RecentRate, format_duration

    meter = RecentRate(100.0)
    assert meter.rate(100.1) == 0.0 and meter.eta(500, 100.1) is None  # nothing done yet
    done, now = 0, 100.0
    for _ in range(40):  # 6 a second, sampled twice a second
        now, done = now + 0.5, done + 3
        meter.add(done, now)
    assert meter.rate(now) == 6.0  # since the start while that is shorter than the window
    for _ in range(80):
        now, done = now + 0.5, done + 1
        meter.add(done, now)
    assert done == 200 and now - 100.0 == 60.0
    assert meter.rate(now) == 2.0  # the last RATE_WINDOW_S (20 s) only
    assert meter.eta(500, now) == 150.0 and format_duration(meter.eta(500, now)) == "2:30"
    assert meter.rate(now + RATE_WINDOW_S) == 1.0  # nothing more done: it falls
    assert format_duration(3725) == "1:02:05" and format_duration(None) == ""


def test_classify_unclassified_runs_only_what_has_no_result(tmp_path, tiny_model):
    """An inspector adds today's photos to the site folder: `--unclassified` runs those (and retries unreadable
    ones), keeps every other result as stored, and still reports and exports the whole folder."""
    folder = tmp_path / "site"
    write_images(folder, 6)
    first = run_cli("classify", folder, "--model", tiny_model)
    assert first.returncode == 0 and "already have a result" not in first.stderr, first.stderr
    before = {r.path: (r.hash, r.p_crack) for r in open_workspace(folder).rows("tiny@0.1")}
    with open_workspace(folder) as ws:  # one stored result changed by hand: a full run would overwrite it
        changed = sorted(before)[0]
        ws.set_results("tiny@0.1", [], [(before[changed][0], 0.123, "no_crack")])  # waits for the commit
    write_images(folder / "today", 2, seed=7)
    (folder / "today" / "broken.jpg").write_text("oops")
    out = tmp_path / "out.csv"
    result = run_cli("classify", folder, "--model", tiny_model, "--unclassified", "--csv", out)
    assert result.returncode == 0, result.stderr
    assert "9 images:" in result.stderr and "1 unreadable" in result.stderr
    assert "3 images without a result tried now, the other 6 kept" in result.stderr
    assert "classify 3/3" in result.stderr
    stored = {r.path: r.p_crack for r in open_workspace(folder).rows("tiny@0.1")}
    assert stored[changed] == pytest.approx(0.123)  # kept, not classified again
    assert all(stored[p] is not None for p in stored if p.startswith("today/") and not p.endswith("broken.jpg"))
    assert len(list(csv.DictReader(out.open()))) == 8  # the whole folder's results, not the run's 2
    (folder / "today" / "broken.jpg").unlink()
    again = run_cli("classify", folder, "--model", tiny_model, "--unclassified")
    assert again.returncode == 0, again.stderr
    assert "every image already has a result from tiny@0.1" in again.stderr and "8 images: " in again.stderr
    everything = run_cli("classify", folder, "--model", tiny_model)  # said before the run: Ctrl-C still saves time
    assert everything.returncode == 0, everything.stderr
    assert everything.stderr.index("note: every image already has a result from tiny@0.1: this run classifies them "
                                   "all again") < everything.stderr.index("classify 8/8")
    write_images(folder / "later", 1, seed=9)
    partly = run_cli("classify", folder, "--model", tiny_model)
    assert "note: 8 of 9 images already have a result from tiny@0.1; --unclassified would classify only the " \
           "other 1" in partly.stderr


def test_ctrl_c_while_a_c_extension_initialises_is_an_interrupt_not_a_traceback(capsys):
    """Ctrl-C during onnxruntime's import surfaces as an ImportError caused by the KeyboardInterrupt."""
    from crackdesk.cli.main import guarded

    def interrupted_import():
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as e:
            raise ImportError("initialization failed") from e

    assert guarded(interrupted_import) == 130
    assert capsys.readouterr().err == "crackdesk: interrupted\n"

    def broken_import():
        raise ImportError("no module named something")

    with pytest.raises(ImportError):  # a real import problem is not hidden as an interrupt
        guarded(broken_import)

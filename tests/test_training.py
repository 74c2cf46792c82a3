"""Training on generated images: a real (tiny) run, its export and metadata, --base, every refusal,
cancellation and the --events protocol (docs/training-events.md). No ../shared needed."""

from __future__ import annotations

import errno
import json
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from training_fixtures import ROOT, leftovers, make_class_folders, run_training

EVENT_KEYS = {
    "start": {"arch", "out", "base", "n_train", "n_val", "n_test", "classes", "skipped", "memory"},
    "phase": {"phase", "message"},
    "progress": {"phase", "done", "total", "eta_s"},
    "epoch": {"phase", "epoch", "epochs", "train_loss", "val_loss", "val_accuracy", "eta_s"},
    "warning": {"message"},
    "done": {"model", "info", "test", "compare", "retention", "site", "memory", "seconds"},
    "error": {"message"},
    "cancelled": {"message"},
}
PHASES = {"data", "features", "head", "finetune", "train", "evaluate", "export", "quantize"}
METRIC_KEYS = {"accuracy", "precision", "recall", "f1", "auc", "n", "tp", "fp", "tn", "fn", "threshold"}
FAST = ["--arch", "cnn", "--input-size", "32"]


def check_protocol(events: list[dict]) -> None:
    for e in events:
        assert e["event"] in EVENT_KEYS, e
        assert EVENT_KEYS[e["event"]] <= set(e), e
        if "phase" in e:
            assert e["phase"] in PHASES, e
    done = [e for e in events if e["event"] == "done"]
    for e in done:
        assert METRIC_KEYS <= set(e["test"])
        if e["compare"] is not None:  # null when every site label was trained on (rehearsing a memory)
            assert set(e["compare"]) == {"images", "new", "old"}
            assert METRIC_KEYS <= set(e["compare"]["new"])
            assert e["compare"]["old"] is None or METRIC_KEYS <= set(e["compare"]["old"])
        for key in ("retention", "site"):
            assert e[key] is None or {"images", "crack", "no_crack"} <= set(e[key])
        assert {"path", "megabytes", "rehearse", "holdout", "activations"} <= set(e["memory"])


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return make_class_folders(tmp_path_factory.mktemp("synthetic"), n_per_class=24)


@pytest.fixture(scope="module")
def trained(synthetic, tmp_path_factory):
    """One real training run shared by several tests."""
    out = tmp_path_factory.mktemp("out") / "tiny.onnx"
    rc, events, err = run_training([str(synthetic), *FAST, "--epochs", "4", "--out", str(out), "--events",
                                    "--name", "tiny", "--seed", "3"])
    assert rc == 0, err
    return out, events


def test_training_run_learns_and_exports_a_valid_model(trained):
    from crackdesk.core.models import load_model

    out, events = trained
    check_protocol(events)
    assert [e["event"] for e in events][-1] == "done"
    losses = [e["train_loss"] for e in events if e["event"] == "epoch"]
    assert len(losses) >= 2 and losses[-1] < losses[0], losses
    model = load_model(out)  # the app's own validation of the file
    assert model.info.architecture == "cnn" and model.info.name == "tiny"
    assert model.info.preprocessing.input_size == (32, 32)
    assert model.info.training["parity_max_abs_diff"] <= 1e-4
    assert model.session.get_inputs()[0].name == "image"
    assert model.session.get_outputs()[0].name == "p_crack"
    x = np.zeros((3, 3, 32, 32), np.float32)  # dynamic batch axis
    assert model.session.run(None, {"image": x})[0].shape == (3, 1)


def test_metadata_round_trip(trained):
    from crackdesk.core.modelformat import ModelInfo
    from crackdesk.core.models import read_model_info

    out, events = trained
    done = events[-1]
    info = read_model_info(out)
    assert info.to_dict() == ModelInfo.from_dict(done["info"]).to_dict()
    assert json.loads(info.to_json()) == info.to_dict()
    assert 0 < info.threshold < 1 and info.created.endswith("Z") and info.base_model is None
    assert info.metrics["accuracy"] == done["test"]["accuracy"]
    assert info.metrics["confusion_matrix"]["values"] == [[info.metrics["tn"], info.metrics["fp"]],
                                                          [info.metrics["fn"], info.metrics["tp"]]]
    counts = info.training["counts"]
    assert sum(sum(c.values()) for c in counts.values()) == 48
    assert info.training["seed"] == 3 and "hardware" in info.training and info.training["seconds"] > 0


def test_base_weights_load_back_exactly(trained, synthetic):
    """The ONNX file's initializers rebuild the torch model: same predictions before any training."""
    from crackdesk.core.images import load_rgb
    from crackdesk.core.models import load_model
    from training import archs, export

    out, _ = trained
    loaded = load_model(out)
    prep = loaded.info.preprocessing
    model = archs.build("cnn", 32)
    export.load_base(out, "cnn", model)
    images = np.stack([prep.to_uint8(load_rgb(p)) for p in sorted(synthetic.glob("*/*.png"))[::6]])
    p_torch = export.torch_probabilities(model, images, prep)
    p_onnx = export.ort_probabilities(loaded.session, images, prep)
    assert np.abs(p_torch - p_onnx).max() < 1e-5


def test_retrain_from_base_compares_with_it(trained, synthetic, tmp_path):
    base, _ = trained
    out = tmp_path / "retrained.onnx"
    rc, events, err = run_training([str(synthetic), "--arch", "cnn", "--base", str(base), "--epochs", "1",
                                    "--out", str(out), "--events"])
    assert rc == 0, err
    check_protocol(events)
    done = events[-1]
    assert done["info"]["base_model"] == "tiny@1.0.0" and done["info"]["name"] == "tiny"
    assert done["info"]["preprocessing"]["input_size"] == [32, 32]  # the base's preprocessing is kept
    assert done["compare"]["old"]["n"] == done["compare"]["new"]["n"] == done["compare"]["images"]
    # The base's memory is rehearsed; a class-folder DATA keeps its split (so the comparison above exists),
    # and the base's threshold is kept.
    from crackdesk.core.models import read_model_info

    start = next(e for e in events if e["event"] == "start")
    assert start["memory"] is not None and done["retention"]["images"] == start["memory"]["holdout"]
    assert done["info"]["threshold"] == read_model_info(base).threshold


def test_base_of_another_architecture_is_refused(trained, synthetic, tmp_path):
    base, _ = trained
    out = tmp_path / "x.onnx"
    rc, events, _ = run_training([str(synthetic), "--arch", "seed-cnn", "--base", str(base), "--out", str(out),
                                  "--events"])
    assert rc == 1 and events[-1]["event"] == "error"
    assert "'cnn' model" in events[-1]["message"] and str(base) in events[-1]["message"]
    assert not out.exists()


def test_input_size_other_than_the_base_is_refused(trained, synthetic, tmp_path):
    base, _ = trained
    rc, events, _ = run_training([str(synthetic), "--arch", "cnn", "--base", str(base), "--input-size", "48",
                                  "--out", str(tmp_path / "x.onnx"), "--events"])
    assert rc == 1 and "input size" in events[-1]["message"]


def refusal(tmp_path, data_args, extra=()) -> str:
    out = tmp_path / "refused.onnx"
    rc, events, err = run_training([*map(str, data_args), *FAST, "--out", str(out), "--events", *extra])
    assert rc == 1, err
    check_protocol(events)
    assert events[-1]["event"] == "error" and "\n" not in events[-1]["message"]
    assert not out.exists() and leftovers(tmp_path) == []
    return events[-1]["message"]


def test_one_class_only_is_refused(tmp_path):
    data = make_class_folders(tmp_path / "d", 10, classes=("Positive",))
    assert "only one class" in refusal(tmp_path, [data])


def test_too_few_images_are_refused(tmp_path):
    data = make_class_folders(tmp_path / "d", 3)
    assert "too few images" in refusal(tmp_path, [data])


def test_empty_class_folders_are_refused(tmp_path):
    (tmp_path / "d" / "Positive").mkdir(parents=True)
    (tmp_path / "d" / "Negative").mkdir()
    message = refusal(tmp_path, [tmp_path / "d"])
    assert "no images" in message and str(tmp_path / "d") in message


def test_folder_without_class_folders_is_refused(tmp_path):
    (tmp_path / "d").mkdir()
    assert "no class folders" in refusal(tmp_path, [tmp_path / "d"])


def test_missing_output_folder_is_refused_before_training(synthetic, tmp_path):
    out = tmp_path / "nowhere" / "m.onnx"
    rc, events, _ = run_training([str(synthetic), *FAST, "--out", str(out), "--events"])
    assert rc == 1 and "does not exist" in events[-1]["message"]
    assert not any(e["event"] == "start" for e in events)  # refused before reading any image


def test_unwritable_output_folder_is_refused(synthetic, tmp_path):
    from processes import run_cli

    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:  # as an ordinary user (root without its permission-bypassing capabilities)
        result = run_cli("train", synthetic, *FAST, "--out", folder / "m.onnx", "--events", unprivileged=True)
    finally:
        folder.chmod(0o755)
    events = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert result.returncode == 1 and "permission" in events[-1]["message"]
    assert not any(e["event"] == "start" for e in events)  # refused before reading any image


def test_no_space_left_writes_nothing(synthetic, tmp_path, monkeypatch):
    """ENOSPC is simulated in-process (fsync of the temporary file fails as on a full disk): the
    message says so, and neither the model, its memory (written first) nor a temporary file remains."""
    from crackdesk.core.memory import memory_path

    import crackdesk.core.atomic as atomic

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full_disk)
    out = tmp_path / "m.onnx"
    rc, events, _ = run_training([str(synthetic), *FAST, "--epochs", "1", "--out", str(out), "--events"])
    assert rc == 1 and "no space left" in events[-1]["message"] and str(memory_path(out)) in events[-1]["message"]
    assert not out.exists() and not memory_path(out).exists() and leftovers(tmp_path) == []


def test_no_space_left_on_a_real_full_filesystem(synthetic, tmp_path):
    """A real full disk: a 256 KB tmpfs (needs root and mount; skipped elsewhere)."""
    full = tmp_path / "full"
    full.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(full)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        out = full / "m.onnx"
        rc, events, _ = run_training([str(synthetic), *FAST, "--epochs", "1", "--out", str(out), "--events"])
        assert rc == 1 and "no space left" in events[-1]["message"]
        assert list(full.iterdir()) == []
    finally:
        subprocess.run(["umount", str(full)], check=False)


def test_output_folder_without_write_permission_is_refused(synthetic, tmp_path, monkeypatch):
    """As root cannot be denied, the permission check itself is simulated."""
    import crackdesk.core.atomic as atomic

    monkeypatch.setattr(atomic.os, "access", lambda path, mode: False)
    rc, events, _ = run_training([str(synthetic), *FAST, "--out", str(tmp_path / "m.onnx"), "--events"])
    assert rc == 1 and "permission denied" in events[-1]["message"] and str(tmp_path) in events[-1]["message"]


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    import crackdesk.core.atomic as atomic
    import training.export as export
    from crackdesk.core.errors import CrackDeskError

    target = tmp_path / "m.onnx"
    target.write_bytes(b"old")
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(CrackDeskError, match="nothing was written"):
        export.atomic_write(b"new", target)
    assert target.read_bytes() == b"old" and leftovers(tmp_path) == []


def test_bad_arguments_give_an_error_event(tmp_path):
    rc, events, _ = run_training([str(tmp_path), "--arch", "resnet", "--out", "m.onnx", "--events"])
    assert rc == 1 and events == [{"event": "error", "message": events[0]["message"]}]
    assert "resnet" in events[0]["message"]


def test_missing_imagenet_weights_file_is_named(synthetic, tmp_path):
    rc, events, _ = run_training([str(synthetic), "--arch", "mobilenetv2", "--input-size", "32", "--weights",
                                  str(tmp_path / "none.pth"), "--out", str(tmp_path / "m.onnx"), "--events"])
    assert rc == 1 and "weights file not found" in events[-1]["message"]


def test_unreadable_images_are_skipped_and_listed(synthetic, tmp_path):
    data = tmp_path / "d"
    shutil.copytree(synthetic, data)
    (data / "Positive" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = tmp_path / "m.onnx"
    rc, events, err = run_training([str(data), *FAST, "--epochs", "1", "--out", str(out), "--events"])
    assert rc == 0, err
    start = next(e for e in events if e["event"] == "start")
    assert [s["path"] for s in start["skipped"]] == [str(data / "Positive" / "broken.jpg")]
    assert start["n_train"] + start["n_val"] + start["n_test"] == 48


def test_human_progress_goes_to_stderr(synthetic, tmp_path):
    rc, events, err = run_training([str(synthetic), *FAST, "--epochs", "1", "--out", str(tmp_path / "m.onnx")])
    assert rc == 0 and events == []
    assert "Training cnn" in err and "Wrote" in err and "Test: accuracy" in err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cancel_leaves_no_model(tmp_path, sig):
    data = make_class_folders(tmp_path / "d", n_per_class=120, size=64)
    out = tmp_path / "m.onnx"
    cmd = [sys.executable, "-m", "training", str(data), "--arch", "cnn", "--input-size", "64", "--epochs", "200",
           "--out", str(out), "--events"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    events = []
    try:
        for line in proc.stdout:
            events.append(json.loads(line))
            if events[-1]["event"] == "epoch":
                proc.send_signal(sig)
                break
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    events += [json.loads(line) for line in rest.splitlines() if line.strip()]
    check_protocol(events)
    assert proc.returncode == 130
    assert events[-1]["event"] == "cancelled"
    assert not out.exists() and leftovers(tmp_path) == []


def test_quantize_reports_accuracy_and_speed(synthetic, tmp_path):
    from crackdesk.core.models import load_model

    out = tmp_path / "q.onnx"
    rc, events, err = run_training([str(synthetic), *FAST, "--epochs", "2", "--quantize", "--out", str(out), "--events"])
    assert rc == 0, err
    check_protocol(events)
    report = load_model(out).info.training["quantization"]
    assert set(report) >= {"kept", "float_accuracy", "int8_accuracy", "speedup"}
    assert report["kept"] == (report["int8_accuracy"] >= report["float_accuracy"] - 0.002)


def test_seed_cnn_trains_and_compare_uses_the_old_models_preprocessing(trained, synthetic, tmp_path):
    """The reference layout trains too; --compare with a model of another input size decodes the
    validation images again at that model's size."""
    old, _ = trained
    out = tmp_path / "seed.onnx"
    rc, events, err = run_training([str(synthetic), "--arch", "seed-cnn", "--input-size", "48", "--epochs", "1",
                                    "--compare", str(old), "--out", str(out), "--events"])
    assert rc == 0, err
    check_protocol(events)
    done = events[-1]
    assert done["info"]["architecture"] == "seed-cnn" and done["info"]["base_model"] is None
    assert done["compare"]["old"]["n"] == done["compare"]["images"] == done["compare"]["new"]["n"]


def test_unexpected_failures_still_end_with_an_error_event(synthetic, tmp_path, monkeypatch):
    import training.export as export

    monkeypatch.setattr(export, "export_bytes", lambda *a: 1 / 0)
    rc, events, err = run_training([str(synthetic), *FAST, "--epochs", "1", "--out", str(tmp_path / "m.onnx"), "--events"])
    assert rc == 1 and events[-1]["event"] == "error" and "ZeroDivisionError" in events[-1]["message"]
    assert "Traceback" in err and not (tmp_path / "m.onnx").exists()

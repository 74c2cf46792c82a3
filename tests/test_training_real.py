"""The shipped models and training on real images (../shared data and weights; skipped where absent)."""

from __future__ import annotations

import numpy as np
import pytest

from training_fixtures import CCIC, ROOT, WEIGHTS, crack_image, run_training

SHIPPED = {"mobilenetv2": 0.9985, "cnn": 0.996}  # test-split accuracy targets (issue 3)


def need(path):
    if not path.exists():
        pytest.skip(f"needs ../shared: {path} is absent")


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_is_valid_and_documented(name):
    from crackdesk.core.models import load_model

    path = ROOT / "models" / f"{name}.onnx"
    if not path.exists():
        pytest.skip(f"{path} not trained yet")
    info = load_model(path).info
    assert (info.name, info.version, info.architecture) == (name, "1.0.0", name)
    assert info.metrics["n"] == 2400 and info.metrics["accuracy"] >= SHIPPED[name]
    assert info.training["seed"] == 0 and info.patch_px == 227
    card = (ROOT / "models" / f"{name}.md").read_text()
    assert "python -m training" in card and f"{100 * info.metrics['accuracy']:.2f}%" in card


def test_shipped_mobilenet_weights_load_back_for_retraining():
    from crackdesk.core.models import load_model
    from training import archs, export

    path = ROOT / "models" / "mobilenetv2.onnx"
    if not path.exists():
        pytest.skip(f"{path} not trained yet")
    loaded = load_model(path)
    prep = loaded.info.preprocessing
    model = archs.build("mobilenetv2", prep.input_size[0])
    export.load_base(path, "mobilenetv2", model)
    rng = np.random.default_rng(1)
    images = np.stack([prep.to_uint8(crack_image(rng, 227, i % 2 == 0)) for i in range(4)])
    p_torch = export.torch_probabilities(model, images, prep)
    p_onnx = export.ort_probabilities(loaded.session, images, prep)
    assert np.abs(p_torch - p_onnx).max() < 1e-4


def test_mobilenet_trains_on_real_images(tmp_path):
    need(CCIC)
    need(WEIGHTS)
    out = tmp_path / "m.onnx"
    rc, events, err = run_training([str(CCIC), "--arch", "mobilenetv2", "--weights", str(WEIGHTS), "--sample", "160",
                                    "--input-size", "96", "--epochs", "2", "--out", str(out), "--events"])
    assert rc == 0, err
    done = events[-1]
    phases = [e["phase"] for e in events if e["event"] == "phase"]
    assert {"features", "head", "finetune", "export", "evaluate"} <= set(phases)
    assert done["test"]["accuracy"] >= 0.9
    assert done["info"]["training"]["imagenet_weights"] == str(WEIGHTS)


def test_missing_weights_offline_say_how_to_provide_them(tmp_path, monkeypatch):
    from training.torchvision_compat import import_torchvision

    tv = import_torchvision()

    def offline(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.delenv("CRACKDESK_MOBILENET_WEIGHTS", raising=False)
    monkeypatch.setattr(type(tv.models.MobileNet_V2_Weights.IMAGENET1K_V1), "get_state_dict", offline)
    rc, events, _ = run_training([str(tmp_path), "--arch", "mobilenetv2", "--out", str(tmp_path / "m.onnx"), "--events"])
    assert rc == 1
    assert "--weights" in events[-1]["message"] and "CRACKDESK_MOBILENET_WEIGHTS" in events[-1]["message"]


def test_retrain_from_shipped_model_on_real_images(tmp_path):
    need(CCIC)
    base = ROOT / "models" / "mobilenetv2.onnx"
    if not base.exists():
        pytest.skip(f"{base} not trained yet")
    out = tmp_path / "r.onnx"
    rc, events, err = run_training([str(CCIC), "--arch", "mobilenetv2", "--base", str(base), "--sample", "100",
                                    "--epochs", "1", "--out", str(out), "--events"])
    assert rc == 0, err
    done = events[-1]
    assert done["info"]["base_model"] == "mobilenetv2@1.0.0"
    assert done["compare"]["old"]["n"] == done["compare"]["images"] > 0


@pytest.mark.slow
def test_walls_retraining_halves_the_error_and_keeps_ccic(tmp_path):
    """Issue 3's loop, end to end (~2 min): scripts/retrain_walls.py with 100 corrections + 400 ccic."""
    import json
    import subprocess
    import sys

    from training_fixtures import WALLS

    need(CCIC)
    need(WALLS)
    if not (ROOT / "models" / "mobilenetv2.onnx").exists():
        pytest.skip("models/mobilenetv2.onnx not trained yet")
    proc = subprocess.run([sys.executable, "scripts/retrain_walls.py", "--work", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout
    summary = json.loads(text[: text.rindex("}") + 1])
    assert summary["walls_error_reduction"] >= 0.5
    assert summary["ccic_test_accuracy_drop_points"] <= 0.3
    # The time (about 45 s on an idle 2-core machine) is recorded in BENCHMARKS.md, not asserted: shared CI
    # machines make wall-clock limits flaky.

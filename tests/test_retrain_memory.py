"""Replay memories (issue 9, parts 2 and 7): every trained model gets one; a --base retraining rehearses it
without being asked, trains on every correction of the site, keeps the base's threshold, reports retention
and the site's labels apart, and hands the new model a memory of its own; the registry moves model and
memory together. Real (tiny) MobileNetV2 trainings at 32x32 from random backbone weights: no ../shared."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest

from training_fixtures import make_class_folders, make_labelled_workspace, run_training

SMALL = ["--arch", "mobilenetv2", "--input-size", "32"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A MobileNetV2 state dict (random, not ImageNet: these tests check the mechanics, not accuracy)."""
    import torch

    from training.torchvision_compat import import_torchvision

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "random_mobilenet_v2.pth"
    torch.save(import_torchvision().models.mobilenet_v2().state_dict(), path)
    return path


def edited_copy(source, target, **changes):
    """The model file with some metadata changed (the graph, and so the weights, untouched)."""
    import dataclasses

    import onnx

    from crackdesk.core.modelformat import write_metadata
    from crackdesk.core.models import read_model_info

    proto = onnx.load(str(source))
    write_metadata(proto, dataclasses.replace(read_model_info(source), **changes))
    onnx.save(proto, str(target))
    return target


@pytest.fixture(scope="module")
def base(weights, tmp_path_factory):
    """A trained model with its memory, its threshold then set to 0.37 (a value re-tuning would not hit)."""
    from crackdesk.core.memory import memory_path

    folder = tmp_path_factory.mktemp("base")
    data = make_class_folders(folder / "data", n_per_class=24)
    trained = folder / "trained.onnx"
    rc, events, err = run_training([str(data), *SMALL, "--weights", str(weights), "--epochs", "1",
                                    "--out", str(trained), "--events", "--name", "basenet"])
    assert rc == 0, err
    path = edited_copy(trained, folder / "basenet.onnx", threshold=0.37)
    shutil.copy(memory_path(trained), memory_path(path))
    return {"path": path, "trained": trained, "events": events}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return make_labelled_workspace(tmp_path_factory.mktemp("site") / "deck", n_per_class=8)


@pytest.fixture(scope="module")
def retrained(base, site, tmp_path_factory):
    out = tmp_path_factory.mktemp("retrained") / "deck.onnx"
    rc, events, err = run_training([str(site), *SMALL, "--base", str(base["path"]), "--epochs", "1",
                                    "--out", str(out), "--events"])
    assert rc == 0, err
    return {"path": out, "events": events}


def start_of(events):
    return next(e for e in events if e["event"] == "start")


def test_a_trained_model_gets_its_memory_with_a_holdout(base):
    from crackdesk.core.memory import load_activations, load_memory, memory_path

    trained, events = base["trained"], base["events"]
    start, done = start_of(events), events[-1]
    memory = load_memory(trained, dim=1280)
    assert memory is not None and memory.features.shape == (start["n_train"] + start["n_val"], 1280)
    assert int(memory.holdout.sum()) == start["n_val"]  # the validation split held out, never the test split
    assert set(memory.holdout_labels) == {0.0, 1.0} and set(memory.fit_labels) == {0.0, 1.0}
    activations = load_activations(trained)
    assert activations.activations.shape == (len(memory.labels), 96, 2, 2)  # block 13's output at 32 px
    assert memory.meta["model"] == "basenet@1.0.0"
    assert memory.meta["model_sha256"] == hashlib.sha256(trained.read_bytes()).hexdigest()
    assert done["memory"]["path"] == str(memory_path(trained)) and done["memory"]["holdout"] == start["n_val"]
    with np.load(memory_path(trained)) as npz:
        assert npz["features"].dtype == np.float16 and npz["activations"].dtype == np.float16


def test_base_retraining_rehearses_its_memory_and_trains_on_every_correction(base, retrained):
    from crackdesk.core.memory import load_memory

    events = retrained["events"]
    assert not [e for e in events if e["event"] == "warning" and "memory" in e["message"]]
    start, done = start_of(events), events[-1]
    base_memory = load_memory(base["path"])
    assert start["memory"]["rehearse"] == int((~base_memory.holdout).sum())  # used without being asked
    assert start["memory"]["holdout"] == int(base_memory.holdout.sum())
    assert any("rehearsing the replay memory" in e["message"] for e in events if e["event"] == "phase")
    assert (start["n_train"], start["n_val"], start["n_test"]) == (16, 0, 0)  # no correction held back
    assert done["info"]["threshold"] == 0.37  # the base's, not re-tuned
    assert done["compare"] is None  # no validation split to compare on


def test_retraining_reports_retention_and_the_site_apart(base, retrained):
    done = retrained["events"][-1]
    retention, site = done["retention"], done["site"]
    held = int(start_of(retrained["events"])["memory"]["holdout"])
    assert retention["images"] == retention["base"]["n"] == retention["new"]["n"] == held
    assert retention["base"]["threshold"] == retention["new"]["threshold"] == 0.37
    assert retention["drop_points"] == round(100 * (retention["base"]["accuracy"] - retention["new"]["accuracy"]), 3)
    assert (site["images"], site["crack"], site["no_crack"]) == (16, 8, 8)
    assert site["new"]["fitted_on"] == 16 and site["new"]["n"] == 16
    assert site["current"]["model"] == "basenet@1.0.0" and site["current"]["trained_on_these"] is False
    assert done["test"]["data"].startswith("the replay memory's held-out rows")


def test_the_new_memory_holds_recomputed_base_rows_and_the_site(base, retrained, site):
    from crackdesk.core.images import load_rgb
    from crackdesk.core.memory import load_activations, load_memory
    from crackdesk.core.models import load_model

    old, new = load_memory(base["path"]), load_memory(retrained["path"], dim=1280)
    old_act = load_activations(base["path"])
    assert len(new.labels) == len(old_act.rows) + 16 and new.holdout.sum() == old.holdout.sum()
    parts = new.meta["parts"]
    assert [p["kind"] for p in parts] == ["base", "site"] and parts[1]["rows"] == [len(old_act.rows), len(new.labels)]
    assert parts[1]["source"] == str(site)
    # Base rows: features recomputed through the new trainable part, so no longer the base graph's.
    assert np.abs(new.features[: len(old_act.rows)] - old.features[old_act.rows]).max() > 1e-3
    # Site rows: the new graph's own features of the site's images.
    model = load_model(retrained["path"])
    prep = model.info.preprocessing
    photos = sorted(site.glob("*.png"))
    graph = model.session.run(["features"], {"image": prep.normalize(np.stack([prep.to_uint8(load_rgb(p))
                                                                               for p in photos]))})[0]
    stored = new.features[len(old_act.rows):]
    nearest = np.abs(stored[:, None, :] - graph[None, :, :]).max(axis=2).min(axis=1)
    assert nearest.max() < 0.01 * max(1.0, float(np.abs(graph).max()))


def test_retraining_the_same_site_again_replaces_its_rows(retrained, site, tmp_path):
    from crackdesk.core.memory import load_memory

    out = tmp_path / "again.onnx"
    rc, events, err = run_training([str(site), *SMALL, "--base", str(retrained["path"]), "--epochs", "1",
                                    "--out", str(out), "--events"])
    assert rc == 0, err
    before, after = load_memory(retrained["path"]), load_memory(out)
    assert len(after.labels) == len(before.labels)  # the folder's 16 rows replaced, not added again
    assert [p["kind"] for p in after.meta["parts"]] == ["base", "site"]
    assert events[-1]["site"]["current"]["trained_on_these"] is True  # this model was trained on this folder


def test_a_base_without_memory_still_retrains_with_a_warning(base, site, tmp_path):
    from crackdesk.core.memory import load_memory

    bare = tmp_path / "bare.onnx"
    shutil.copy(base["path"], bare)  # the model alone
    out = tmp_path / "new.onnx"
    rc, events, err = run_training([str(site), *SMALL, "--base", str(bare), "--epochs", "1", "--out", str(out),
                                    "--events"])
    assert rc == 0, err
    warnings = [e["message"] for e in events if e["event"] == "warning"]
    assert any("no replay memory" in w and "cannot rehearse" in w for w in warnings)
    start, done = start_of(events), events[-1]
    assert start["memory"] is None and start["n_val"] > 0  # as before: the site is split
    assert done["retention"] is None and done["info"]["threshold"] == 0.37
    assert load_memory(out) is not None  # it still gets a memory, of its own training data


def test_registry_imports_exports_and_removes_model_and_memory_together(base, tmp_path):
    from crackdesk.core.errors import ModelError
    from crackdesk.core.memory import memory_path
    from crackdesk.core.models import ModelRegistry

    registry = ModelRegistry(tmp_path / "shipped", tmp_path / "user")
    entry = registry.import_model(base["path"])
    assert memory_path(entry.path).read_bytes() == memory_path(base["path"]).read_bytes()
    (tmp_path / "out").mkdir()
    exported = registry.export_model(entry, tmp_path / "out" / "copy.onnx")
    assert memory_path(exported).read_bytes() == memory_path(base["path"]).read_bytes() and exported.read_bytes() == base["path"].read_bytes()
    registry.remove(entry)
    assert not entry.path.exists() and not memory_path(entry.path).exists()

    broken = tmp_path / "broken" / "basenet.onnx"
    broken.parent.mkdir()
    shutil.copy(base["path"], broken)
    memory_path(broken).write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ModelError, match="replay memory cannot be read"):
        registry.import_model(broken)
    assert list((tmp_path / "user").glob("*")) == []  # neither the model nor its memory


def test_retrain_dialog_rehearses_without_a_dataset_and_shows_both_comparisons(qtbot, base, site, retrained,
                                                                               tmp_path):
    from crackdesk.core.memory import memory_path
    from crackdesk.core.models import ModelRegistry
    from crackdesk.core.store import open_workspace
    from crackdesk.ui.retrain_dialog import RetrainDialog

    shipped = tmp_path / "shipped"
    shipped.mkdir()
    for path in (base["path"], memory_path(base["path"])):
        shutil.copy(path, shipped / path.name)
    edited_copy(base["path"], shipped / "nomemory.onnx", name="nomemory")  # the model alone
    registry = ModelRegistry(shipped, tmp_path / "user")
    entry = next(e for e in registry.entries() if e.path.name == "basenet.onnx")
    ws = open_workspace(site)
    try:
        dialog = RetrainDialog(ws, registry, entry)
        qtbot.addWidget(dialog)
        assert dialog.base.currentData().key == entry.key
        assert not dialog.use_dataset.isChecked()
        assert "replay memory" in dialog.memory_note.text() and "No dataset folder needed" in dialog.memory_note.text()
        argv = dialog.command()
        assert "--base" in argv and str(entry.path) in argv and "--sample" not in argv
        assert argv[argv.index("train") + 1] == str(site) and argv[argv.index("train") + 2].startswith("--")

        for event in retrained["events"]:
            dialog.handle(event)
        held = retrained["events"][-1]["retention"]["images"]
        assert f"replay memory, {held:,} held out" in dialog.retention_line.text()
        site_line = dialog.site_line.text()
        assert "16 labels" in site_line and "fitted on them" in site_line
        assert "too few labels to tell" in site_line  # 16 labels: no accuracy figure
        # The table compares base and new on the held-out rows: here 8, so the counts show, the rates do not.
        assert dialog.results_box.title().startswith(f"On the memory's {held} held-out images")
        assert "too few labels to tell" in dialog.results_box.title() and dialog.table.item(0, 0).text() == "—"
        assert dialog.new_matrix.metrics["n"] == dialog.old_matrix.metrics["n"] == held

        other = next(i for i in range(dialog.base.count())
                     if dialog.base.itemData(i) is not None and dialog.base.itemData(i).path.name == "nomemory.onnx")
        dialog.base.setCurrentIndex(other)
        assert "no replay memory" in dialog.memory_note.text() and "forget" in dialog.memory_note.text()
    finally:
        ws.close()


def test_a_failed_model_write_puts_the_previous_memory_back(tmp_path):
    """The memory is written first; when the model then cannot be written (here: a folder is in its place),
    the memory that was there before comes back, so the pair stays as it was."""
    from crackdesk.core.errors import CrackDeskError
    from crackdesk.core.memory import memory_path
    from training.export import write_model_and_memory
    from training.memory_build import MemoryContent

    out = tmp_path / "m.onnx"
    out.mkdir()  # what the model write will refuse to replace
    memory_path(out).write_bytes(b"the previous memory")
    labels = np.array([0, 1, 0, 1], np.float32)
    content = MemoryContent(np.ones((4, 3), np.float32), labels, np.array([False, False, True, True]), meta={})
    with pytest.raises(CrackDeskError):
        write_model_and_memory(b"model bytes", out, content)
    assert memory_path(out).read_bytes() == b"the previous memory"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.memory.npz", "m.onnx"]

    fresh = tmp_path / "fresh.onnx"
    write_model_and_memory(b"model bytes", fresh, content)
    assert fresh.read_bytes() == b"model bytes" and memory_path(fresh).is_file()


def test_a_memory_of_pooled_features_only_cannot_rehearse_and_says_so(base, site, tmp_path):
    from crackdesk.core.memory import load_memory, memory_path, save_memory

    pooled = tmp_path / "pooled.onnx"
    shutil.copy(base["path"], pooled)
    m = load_memory(base["path"])
    save_memory(memory_path(pooled), m.features, m.labels, m.holdout, m.meta)  # no activations
    rc, events, err = run_training([str(site), *SMALL, "--base", str(pooled), "--epochs", "1",
                                    "--out", str(tmp_path / "new.onnx"), "--events"])
    assert rc == 0, err
    assert any("pooled features only" in e["message"] for e in events if e["event"] == "warning")
    assert start_of(events)["memory"] is None and events[-1]["retention"] is None


@pytest.mark.parametrize("name, dim, shape, with_activations", [("mobilenetv2", 1280, (96, 10, 10), (1000, 500)),
                                                                  ("cnn", 128, (96, 6, 6), (2000, 1000))])
def test_shipped_models_carry_their_own_memory(name, dim, shape, with_activations):
    """Built by scripts/build_memory.py from ccic; a model re-exported without rebuilding it fails here."""
    from crackdesk.core.memory import load_activations, load_memory, memory_path
    from training_fixtures import ROOT

    model = ROOT / "models" / f"{name}.onnx"
    assert memory_path(model).is_file(), "the shipped models ship their memory (scripts/build_memory.py)"
    memory = load_memory(model, dim=dim)
    assert (int((~memory.holdout).sum()), int(memory.holdout.sum())) == (2000, 2400)  # all of ccic val held out
    assert memory.meta["model_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert memory.meta["data_name"] == "Concrete" and "test split" in memory.meta["chosen"]
    activations = load_activations(model)
    assert activations.activations.shape[1:] == shape
    assert (int((~activations.holdout).sum()), int(activations.holdout.sum())) == with_activations
    assert memory_path(model).stat().st_size < 40e6  # tens of MB, not hundreds


def int8_copy(source, target):
    """An int8 fast path of a model, made as scripts/make_int8_model.py makes the shipped one: quantized (a
    few random calibration images), named NAME-int8, with `quantized_from` naming the float original."""
    import dataclasses

    from crackdesk.core.models import model_key, read_model_info
    from training.export import with_metadata
    from training.quantize import quantize_bytes

    info = read_model_info(source)
    size = info.preprocessing.input_size[0]
    calibration = np.random.default_rng(0).integers(0, 256, (16, size, size, 3), dtype=np.uint8)
    int8 = quantize_bytes(source.read_bytes(), calibration, info.preprocessing, float_first_conv=True)
    target.write_bytes(with_metadata(int8, dataclasses.replace(info, name=f"{info.name}-int8", version="1.0.0",
                                                               quantized_from=model_key(info))))
    return target


def test_retraining_an_int8_model_starts_from_its_float_original(base, site, tmp_path):
    from crackdesk.core.models import load_model

    int8 = int8_copy(base["path"], base["path"].with_name("basenet-int8.onnx"))  # beside its float original
    try:
        loaded = load_model(int8)
        assert loaded.info.quantized_from == "basenet@1.0.0" and loaded.info.features is not None
        assert {o.name for o in loaded.session.get_outputs()} >= {"p_crack", "features"}
        out = tmp_path / "new.onnx"
        rc, events, err = run_training([str(site), *SMALL, "--base", str(int8), "--epochs", "1", "--out", str(out),
                                        "--events"])
        assert rc == 0, err
        notes = [e["message"] for e in events if e["event"] == "phase" and e["phase"] == "base"]
        assert notes and notes[0].startswith("retraining starts from the float original basenet@1.0.0 of "
                                             "basenet-int8@1.0.0")
        start, done = start_of(events), events[-1]
        assert start["base"] == str(base["path"]) and start["memory"] is not None  # the float one's memory
        assert done["info"]["base_model"] == "basenet@1.0.0" and done["info"]["name"] == "basenet"
        assert done["info"]["quantized_from"] is None and done["retention"] is not None
    finally:
        int8.unlink()

    (tmp_path / "alone").mkdir()
    alone = int8_copy(base["path"], tmp_path / "alone" / "basenet-int8.onnx")  # its float original nowhere
    rc, events, err = run_training([str(site), *SMALL, "--base", str(alone), "--epochs", "1",
                                    "--out", str(tmp_path / "other.onnx"), "--events"])
    assert rc == 1 and not (tmp_path / "other.onnx").exists()
    error = events[-1]
    assert error["event"] == "error" and "\n" not in error["message"]
    assert "int8 fast path of basenet@1.0.0" in error["message"] and "not installed" in error["message"]


def test_retrain_dialog_starting_from_an_int8_model_says_it_retrains_the_float_original(qtbot, base, site, tmp_path):
    from crackdesk.core.memory import memory_path
    from crackdesk.core.models import ModelRegistry
    from crackdesk.core.store import open_workspace
    from crackdesk.ui.retrain_dialog import RetrainDialog

    shipped = tmp_path / "shipped"
    shipped.mkdir()
    int8 = int8_copy(base["path"], shipped / "basenet-int8.onnx")
    registry = ModelRegistry(shipped, tmp_path / "user")
    ws = open_workspace(site)
    try:
        dialog = RetrainDialog(ws, registry, registry.find("basenet-int8"))
        qtbot.addWidget(dialog)
        assert "not installed" in dialog.memory_note.text()  # its float original is nowhere yet
        for path in (base["path"], memory_path(base["path"])):
            shutil.copy(path, shipped / path.name)
        dialog._base_changed()
        note = dialog.memory_note.text()
        assert note.startswith("Starts from the float original basenet 1.0.0 of basenet-int8.") and "No dataset" in note
        argv = dialog.command()
        assert argv[argv.index("--base") + 1] == str(int8)  # training resolves it, and says so in its log
        assert argv[argv.index("--name") + 1] == "basenet"  # the retrained model is a float model
        dialog.handle({"event": "phase", "phase": "base", "message": "retraining starts from the float original"})
        assert "retraining starts from the float original" in dialog.log.toPlainText()
    finally:
        ws.close()

import json
import os
from pathlib import Path

import pytest
from factories import make_tiny_model, tiny_info

from crackdesk.core.errors import ModelError
from crackdesk.core.modelformat import FORMAT_VERSION, ModelInfo, peek_name
from crackdesk.core.models import DEFAULT_MODEL, ModelRegistry, float_original, load_model, origin


def test_loads_and_round_trips_metadata(tiny_model):
    model = load_model(tiny_model)
    assert model.key == "tiny@0.1"
    again = ModelInfo.from_json(model.info.to_json())
    assert again.to_dict() == model.info.to_dict()
    assert model.info.preprocessing.input_size == (32, 32)


def test_text_file_is_not_a_model(tmp_path):
    path = tmp_path / "fake.onnx"
    path.write_text("hello")
    with pytest.raises(ModelError, match="fake.onnx: not a valid ONNX model"):
        load_model(path)


def test_onnx_without_crackdesk_metadata(tmp_path):
    path = make_tiny_model(tmp_path / "plain.onnx", metadata=False)
    with pytest.raises(ModelError, match="not a CrackDesk model"):
        load_model(path)


def test_input_size_must_match_metadata(tmp_path):
    path = make_tiny_model(tmp_path / "m.onnx", input_size=32, info=tiny_info(64))
    with pytest.raises(ModelError, match="height is 32 but the metadata says 64"):
        load_model(path)


def test_output_columns_must_match(tmp_path):
    path = make_tiny_model(tmp_path / "m.onnx", output_columns=3)
    with pytest.raises(ModelError, match="3 columns"):
        load_model(path)


@pytest.mark.parametrize("change, message", [
    ({"format_version": FORMAT_VERSION + 1}, "newer than this CrackDesk"),
    ({"threshold": 1.5}, "field 'threshold' must be a number strictly between 0 and 1, got 1.5"),
    ({"positive_class": "defect"}, "field 'positive_class' must be one of class_names .*, got 'defect'"),
    ({"preprocessing": {"input_size": [32]}}, "field 'preprocessing.input_size' must be \\[height, width\\]"),
    ({"name": ""}, "lacks name"),
])
def test_bad_metadata_is_refused_with_the_reason(change, message):
    d = tiny_info().to_dict()
    d.update(change)
    with pytest.raises(ModelError, match=message):
        ModelInfo.from_json(json.dumps(d), "x.onnx")


def test_registry_lists_finds_imports_and_removes(tmp_path, tiny_model):
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    make_tiny_model(shipped / "cnn.onnx", info=tiny_info(name="cnn", version="1.0.0"))
    make_tiny_model(shipped / "mobilenetv2.onnx", info=tiny_info(name="mobilenetv2", version="1.0.0"))
    (shipped / "broken.onnx").write_text("nope")
    registry = ModelRegistry(shipped, tmp_path / "user")
    assert [e.info.name for e in registry.entries()] == ["mobilenetv2", "cnn"]  # without its fast path: the float
    assert registry.find().info.name == "mobilenetv2"
    make_tiny_model(shipped / "mobilenetv2-int8.onnx", info=tiny_info(name="mobilenetv2-int8", version="1.0.0",
                                                                      quantized_from="mobilenetv2@1.0.0"))
    names = [e.info.name for e in registry.entries()]
    assert names == ["mobilenetv2-int8", "mobilenetv2", "cnn"]  # the default, then the exact float one
    assert len(registry.problems) == 1 and "broken.onnx" in str(registry.problems[0])
    assert registry.find().info.name == DEFAULT_MODEL == registry.default().info.name
    assert float_original(registry.find().info, registry).key == "mobilenetv2@1.0.0"
    assert origin(registry.find(), short=True) == "int8 fast path of mobilenetv2@1.0.0"
    assert registry.find("cnn@1.0.0").info.name == "cnn"
    assert registry.find(str(tiny_model)).source == "file"
    with pytest.raises(ModelError, match="no model named 'resnet'"):
        registry.find("resnet")

    imported = registry.import_model(tiny_model)
    assert imported.source == "user" and imported.path.parent == tmp_path / "user"
    assert registry.find("tiny").key == "tiny@0.1"
    with pytest.raises(ModelError, match="already installed"):
        registry.import_model(make_tiny_model(tmp_path / "again.onnx"))
    with pytest.raises(ModelError, match="shipped models cannot be removed"):
        registry.remove(registry.find("cnn"))
    registry.remove(imported)
    assert [e.info.name for e in registry.entries()] == ["mobilenetv2-int8", "mobilenetv2", "cnn"]


def test_peek_name_reads_the_metadata_without_loading_the_graph(tmp_path):
    path = make_tiny_model(tmp_path / "m.onnx", info=tiny_info(name="cnn", version="1.0.0"))
    assert peek_name(path) == ("cnn", "1.0.0")
    data = path.read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) - 5])  # the metadata comes last: cut inside it
    (tmp_path / "text.onnx").write_text("hello")
    os.mkfifo(tmp_path / "pipe.onnx")  # would block an open(): not opened
    for name in ("cut.onnx", "text.onnx", "missing.onnx", "pipe.onnx"):
        assert peek_name(tmp_path / name) is None, name
    assert peek_name(make_tiny_model(tmp_path / "plain.onnx", metadata=False)) is None


def test_looking_for_one_model_opens_only_its_file(tmp_path, monkeypatch):
    """`classify` looks up one model (the default, a name, a screening model beside it): the other model files
    are told apart by their peeked metadata, not opened (an onnxruntime session each, 10-20 ms)."""
    import crackdesk.core.models as models

    shipped = tmp_path / "shipped"
    shipped.mkdir()
    make_tiny_model(shipped / "cnn.onnx", info=tiny_info(name="cnn", version="1.0.0"))
    make_tiny_model(shipped / "mobilenetv2.onnx", info=tiny_info(name="mobilenetv2", version="1.0.0"))
    make_tiny_model(shipped / "mobilenetv2-int8.onnx", info=tiny_info(
        name="mobilenetv2-int8", version="1.0.0", quantized_from="mobilenetv2@1.0.0",
        screen={"model": "cnn@1.0.0", "below": 0.1}))
    (shipped / "broken.onnx").write_text("nope")  # cannot be peeked at: opened, and reported
    opened = []
    real = models.load_model
    monkeypatch.setattr(models, "load_model",
                        lambda path, *a, **k: opened.append(Path(path).name) or real(path, *a, **k))
    registry = ModelRegistry(shipped, tmp_path / "user")
    assert registry.default().info.name == "mobilenetv2-int8"
    assert sorted(opened) == ["broken.onnx", "mobilenetv2-int8.onnx"]
    assert [Path(p.path).name for p in registry.problems] == ["broken.onnx"]
    fast = registry.find("mobilenetv2-int8").info
    opened.clear()
    assert models.related_model(fast, "cnn@1.0.0").key == "cnn@1.0.0"
    assert sorted(opened) == ["broken.onnx", "cnn.onnx"]  # not the float mobilenetv2 beside it
    opened.clear()
    assert registry.find("mobilenetv2@1.0.0").info.name == "mobilenetv2"
    assert sorted(opened) == ["broken.onnx", "mobilenetv2.onnx"]
    with pytest.raises(ModelError, match=r"no model named 'resnet' \(available: cnn, mobilenetv2, mobilenetv2-int8;"):
        registry.find("resnet")  # the message still names every model


def test_import_refuses_a_bad_file_and_installs_nothing(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x01garbage")
    registry = ModelRegistry(tmp_path / "none", tmp_path / "user")
    with pytest.raises(ModelError):
        registry.import_model(bad)
    assert list((tmp_path / "user").glob("*")) == []  # an absent folder globs to nothing as well


def test_shared_model_is_loaded_once_per_file_and_thread_count(tmp_path):
    from crackdesk.core.inference import Classifier
    from crackdesk.core.models import shared_model

    path = make_tiny_model(tmp_path / "m.onnx", info=tiny_info(version="1.0.0"))
    first = Classifier(path)
    assert Classifier(path).session is first.session  # the app's classification and site adapter: one session
    assert shared_model(path, threads=first.model.session.get_session_options().intra_op_num_threads) is first.model
    assert shared_model(path, threads=7) is not first.model  # another thread count: its own session
    make_tiny_model(path, info=tiny_info(version="2.0.10"))  # the file replaced in place (another size)
    replaced = Classifier(path)
    assert replaced.session is not first.session and replaced.info.version == "2.0.10"
    with pytest.raises(ModelError, match="model file not found"):
        shared_model(tmp_path / "gone.onnx", threads=1)


def test_model_metadata_is_read_once_per_file_version_and_each_caller_gets_its_own_copy(tmp_path, monkeypatch):
    import crackdesk.core.models as models

    path = make_tiny_model(tmp_path / "m.onnx", info=tiny_info(version="1.0.0"))
    opened = []
    load = models.load_model
    monkeypatch.setattr(models, "load_model", lambda p, *a, **k: opened.append(p) or load(p, *a, **k))
    first = models.read_model_info(path)
    first.metrics["accuracy"] = -1.0  # a caller changing its copy (training fills in its figures)
    again = models.read_model_info(path)
    registry = ModelRegistry(tmp_path, tmp_path / "user")
    assert [e.info.version for e in registry.entries()] == ["1.0.0"]
    assert len(opened) == 1  # one onnxruntime session for three reads
    assert again.metrics.get("accuracy") != -1.0 and again is not first
    make_tiny_model(path, info=tiny_info(version="2.0.10"))  # replaced in place: read again
    assert models.read_model_info(path).version == "2.0.10" and len(opened) == 2
    with pytest.raises(ModelError, match="model file not found"):
        models.read_model_info(tmp_path / "gone.onnx")

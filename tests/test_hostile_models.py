"""Hostile model files (issue 10; the other hostile cases are in test_hostile.py and test_hostile_gui.py):
each test is a defect a tester reproduced, built from real files."""

# -- models --
# Malformed model files (real ONNX graphs whose `crackdesk` metadata is written raw, so it can hold what
# ModelInfo cannot) must be refused one by one with the file and the field named, never break the others.
import json
from pathlib import Path

import pytest
from factories import make_tiny_model, set_raw_metadata, tiny_info, write_images

from crackdesk.core.errors import ModelError
from crackdesk.core.models import ModelRegistry, load_model

NAN, INF = float("nan"), float("inf")


def tiny_metadata(changes: dict) -> dict:
    """The tiny model's metadata with some keys replaced; 'preprocessing.std' names a nested key."""
    document = tiny_info().to_dict()
    for key, value in changes.items():
        parent, _, leaf = key.rpartition(".")
        (document[parent] if parent else document)[leaf] = value
    return document


def malformed_model(path: Path, changes: dict) -> Path:
    return set_raw_metadata(make_tiny_model(path), tiny_metadata(changes))


def model_folders_with_bad_files(shipped: Path, user: Path) -> None:
    """Two good models, one with unparseable metadata, one dangling link that glob lists but nobody can read."""
    shipped.mkdir(parents=True)
    user.mkdir(parents=True)
    make_tiny_model(shipped / "cnn.onnx", info=tiny_info(name="cnn", version="1.0.0"))
    make_tiny_model(user / "mine.onnx", info=tiny_info(name="mine", version="2.0"))
    malformed_model(user / "bad.onnx", {"patch_px": "abc"})
    (user / "gone.onnx").symlink_to(user / "nowhere.onnx")


def test_one_malformed_model_does_not_hide_the_others(tmp_path):
    model_folders_with_bad_files(tmp_path / "shipped", tmp_path / "user")
    registry = ModelRegistry(tmp_path / "shipped", tmp_path / "user")
    assert [e.key for e in registry.entries()] == ["cnn@1.0.0", "mine@2.0"]
    reasons = {Path(p.path).name: p.reason for p in registry.problems}
    assert set(reasons) == {"bad.onnx", "gone.onnx"}
    assert "'patch_px'" in reasons["bad.onnx"]
    assert registry.find("cnn").key == "cnn@1.0.0"


def test_cli_lists_good_models_classifies_and_names_the_bad_file(tmp_path, monkeypatch, capsys):
    from crackdesk.cli.main import main

    user = tmp_path / "data" / "models"
    model_folders_with_bad_files(tmp_path / "shipped", user)
    monkeypatch.setenv("CRACKDESK_MODELS_DIR", str(tmp_path / "shipped"))
    monkeypatch.setenv("CRACKDESK_DATA_DIR", str(tmp_path / "data"))
    assert main(["models"]) == 0
    out, err = capsys.readouterr()
    assert "cnn" in out and "mine" in out
    assert f"skipped: {user / 'bad.onnx'}: " in err and "'patch_px'" in err
    assert f"skipped: {user / 'gone.onnx'}: " in err
    write_images(tmp_path / "photos", 3)
    assert main(["classify", str(tmp_path / "photos"), "--model", "cnn"]) == 0
    assert "with cnn@1.0.0" in capsys.readouterr().err


def test_gui_starts_with_the_good_models_and_says_which_file_is_bad(qtbot, tmp_path, models_dir):
    from PySide6.QtCore import Qt
    from test_gui_helpers import open_window

    malformed_model(models_dir / "bad.onnx", {"patch_px": "abc"})
    window = open_window(qtbot, tmp_path / "settings.ini")
    assert window.entry.key == "tiny@0.1"
    combo = window.actions.model_combo
    items = [(combo.itemText(i), combo.itemData(i), combo.itemData(i, Qt.ToolTipRole)) for i in range(combo.count())]
    assert [data.key for _, data, _ in items if data is not None] == ["tiny@0.1"]
    (bad,) = [i for i, (text, _, _) in enumerate(items) if "bad.onnx" in text]
    assert "'patch_px'" in items[bad][2] and not combo.model().item(bad).isEnabled()
    window.actions.open_models()
    dialog = window.models_dialog
    assert dialog.list.count() == 1
    assert "bad.onnx" in dialog.error.text() and "'patch_px'" in dialog.error.text()
    window.close()


def test_deeply_nested_metadata_is_a_model_error(tmp_path):
    # json.loads raises RecursionError on deep nesting, which is not a ModelError.
    text = json.dumps(tiny_metadata({"training": "DEEP"})).replace('"DEEP"', "[" * 100_000 + "]" * 100_000)
    path = set_raw_metadata(make_tiny_model(tmp_path / "deep.onnx"), text)
    with pytest.raises(ModelError, match="deep.onnx"):
        load_model(path)


UNSAFE_NAMES = ["../../../escaped", "/tmp/escaped", "..\\..\\escaped", "a/b", ".hidden", "..", "-rf", "a@b",
                "x" * 65, "naïve", "tab\tname", "nul\x00", " space"]


@pytest.mark.parametrize("field", ["name", "version", "architecture"])
@pytest.mark.parametrize("value", UNSAFE_NAMES)
def test_unsafe_names_and_versions_are_refused_on_load(tmp_path, field, value):
    path = malformed_model(tmp_path / "m.onnx", {field: value})
    with pytest.raises(ModelError) as refused:
        load_model(path)
    assert str(path) in str(refused.value) and f"'{field}'" in str(refused.value)


def test_import_never_writes_outside_the_user_models_folder(tmp_path):
    user = tmp_path / "a" / "b" / "user"
    path = malformed_model(tmp_path / "m.onnx", {"name": "../../../escaped"})
    registry = ModelRegistry(tmp_path / "none", user)
    with pytest.raises(ModelError, match="'name'"):
        registry.import_model(path)
    assert [p.name for p in tmp_path.rglob("*escaped*")] == []


@pytest.mark.parametrize("name, version", [("../../../escaped", "0.1"), ("ok", "../../x"), ("/abs", "1"),
                                           ("..", ".."), ("a\\..\\b", "1"), ("x" * 500, "1"), ("", "")])
def test_the_installed_file_name_stays_in_the_folder_whatever_the_metadata(tmp_path, name, version):
    from crackdesk.core.models import installed_file_name

    # ModelInfo itself checks nothing: this is import's second line of defence if the load check is bypassed.
    file_name = installed_file_name(tiny_info(name=name, version=version))
    assert file_name.endswith(".onnx") and not file_name.startswith(".") and len(file_name) < 200
    assert "/" not in file_name and "\\" not in file_name
    assert (tmp_path / file_name).resolve().parent == tmp_path.resolve()


BAD_FIELDS = [
    ({"patch_px": 0}, "patch_px"), ({"patch_px": 1}, "patch_px"), ({"patch_px": 3.7}, "patch_px"),
    ({"patch_px": "abc"}, "patch_px"), ({"patch_px": True}, "patch_px"), ({"patch_px": 10**6}, "patch_px"),
    ({"patch_px": None}, "patch_px"),
    ({"threshold": NAN}, "threshold"), ({"threshold": INF}, "threshold"), ({"threshold": True}, "threshold"),
    ({"threshold": "0.5"}, "threshold"),
    ({"preprocessing.std": [NAN, 0.25, 0.25]}, "preprocessing.std[0]"),
    ({"preprocessing.std": [0.25, INF, 0.25]}, "preprocessing.std[1]"),
    ({"preprocessing.std": [0.25, 0.25, -0.25]}, "preprocessing.std[2]"),
    ({"preprocessing.std": [True, 0.25, 0.25]}, "preprocessing.std[0]"),
    ({"preprocessing.std": "0.25"}, "preprocessing.std"),
    ({"preprocessing.mean": [NAN, 0.5, 0.5]}, "preprocessing.mean[0]"),
    ({"preprocessing.mean": [0.5, 0.5]}, "preprocessing.mean"),
    ({"preprocessing.mean": [0.5, "x", 0.5]}, "preprocessing.mean[1]"),
    ({"preprocessing.mean": [1e300, 0.5, 0.5]}, "preprocessing.mean[0]"),
    ({"preprocessing.input_size": [32.0, 32.0]}, "preprocessing.input_size[0]"),
    ({"preprocessing.input_size": [32, True]}, "preprocessing.input_size[1]"),
    ({"preprocessing.input_size": [32, 32, 3]}, "preprocessing.input_size"),
    ({"preprocessing.resize": "nearest"}, "preprocessing.resize"),
    ({"preprocessing.layout": "NHWC"}, "preprocessing.layout"),
    ({"preprocessing.channels": "BGR"}, "preprocessing.channels"),
    ({"preprocessing.scale": "0..255"}, "preprocessing.scale"),
    ({"preprocessing": [1, 2]}, "preprocessing"),
    ({"class_names": ["crack", "crack"]}, "class_names"), ({"class_names": ["", "crack"]}, "class_names[0]"),
    ({"class_names": ["no_crack", 3]}, "class_names[1]"), ({"class_names": "crack"}, "class_names"),
    ({"positive_class": 1}, "positive_class"), ({"positive_class": "defect"}, "positive_class"),
    ({"output": ["probability"]}, "output"), ({"output": "logits"}, "output"),
    ({"format_version": True}, "format_version"), ({"format_version": 0}, "format_version"),
    ({"format_version": 1.0}, "format_version"),
    ({"training": [1, 2]}, "training"), ({"training": "text"}, "training"), ({"training": None}, "training"),
    ({"training": {"stages": {"loss": [0.1, NAN]}}}, "training.stages.loss[1]"),
    ({"metrics": ["accuracy"]}, "metrics"), ({"metrics": {"accuracy": NAN}}, "metrics.accuracy"),
    ({"metrics": {"accuracy": "high"}}, "metrics.accuracy"), ({"metrics": {"accuracy": 1.5}}, "metrics.accuracy"),
    ({"metrics": {"n": -3}}, "metrics.n"), ({"metrics": {"tp": True}}, "metrics.tp"),
    ({"metrics": {"other": {"x": -INF}}}, "metrics.other.x"),
    ({"created": 20260101}, "created"), ({"description": ["x"]}, "description"), ({"base_model": 3}, "base_model"),
    ({"quantized_from": "mobilenetv2"}, "quantized_from"), ({"quantized_from": 3}, "quantized_from"),
    ({"quantized_from": "a@1@2"}, "quantized_from"), ({"quantized_from": "../x@1.0"}, "quantized_from"),
    ({"screen": {"model": "cnn@1.0.0", "below": 0.5}}, "screen.below"),  # would settle windows it calls cracked
    ({"screen": {"model": "cnn@1.0.0", "below": float("nan")}}, "screen.below"),
    ({"screen": {"model": "cnn", "below": 0.03}}, "screen.model"), ({"screen": "cnn"}, "screen"),
    ({"name": 5}, "name"), ({"version": 1.0}, "version"), ({"architecture": ["cnn"]}, "architecture"),
]


@pytest.mark.parametrize("changes, field", BAD_FIELDS, ids=[f"{f}={c}" for c, f in BAD_FIELDS])
def test_every_metadata_field_is_checked_on_load(tmp_path, changes, field):
    path = malformed_model(tmp_path / "m.onnx", changes)
    with pytest.raises(ModelError) as refused:
        load_model(path)
    assert str(refused.value).startswith(f"{path}: ") and f"'{field}'" in str(refused.value)


def test_well_formed_metadata_still_loads_with_unknown_keys_and_no_optional_ones(tmp_path):
    # Keys this version does not know are ignored (a later minor addition); optional ones take defaults.
    document = {k: v for k, v in tiny_metadata({"future_key": {"x": 1}}).items()
                if k not in ("training", "metrics", "created", "description", "base_model", "patch_px")}
    info = load_model(set_raw_metadata(make_tiny_model(tmp_path / "m.onnx"), document)).info
    assert (info.patch_px, info.training, info.metrics, info.base_model) == (227, {}, {}, None)

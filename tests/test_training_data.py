"""Training data: sources, de-duplication, the seeded content-hash split, sampling, workspaces."""

from __future__ import annotations

import shutil

import pytest

from training_fixtures import make_class_folders


@pytest.fixture
def folders(tmp_path):
    return make_class_folders(tmp_path / "data", n_per_class=40, size=32)


def splits(examples):
    return {ex.hash: ex.split for ex in examples}


def test_split_is_stratified_reproducible_and_seeded(folders):
    from training.data import collect

    a, _, _ = collect([str(folders)], seed=0, sample=None)
    b, _, _ = collect([str(folders)], seed=0, sample=None)
    c, _, _ = collect([str(folders)], seed=1, sample=None)
    assert splits(a) == splits(b) and splits(a) != splits(c)
    for label in (0, 1):
        counts = {s: sum(ex.split == s and ex.label == label for ex in a) for s in ("train", "val", "test")}
        assert counts == {"train": 28, "val": 6, "test": 6}


def test_split_follows_content_not_file_names(folders, tmp_path):
    from training.data import collect

    renamed = tmp_path / "renamed"
    shutil.copytree(folders, renamed)
    for p in sorted(renamed.glob("*/*.png")):
        p.rename(p.with_name("x_" + p.name))
    assert splits(collect([str(folders)], 0, None)[0]) == splits(collect([str(renamed)], 0, None)[0])


def test_exact_duplicates_are_removed(folders):
    from training.data import collect

    pos = sorted((folders / "Positive").glob("*.png"))
    for i, p in enumerate(pos[:5]):
        shutil.copy(p, folders / "Positive" / f"copy_{i}.png")
    examples, _, summary = collect([str(folders)], 0, None)
    assert len(examples) == 80 and summary["duplicates_removed"] == 5


def test_sample_is_stratified_and_keeps_the_test_split(folders):
    from training.data import collect

    full, _, _ = collect([str(folders)], 0, None)
    sample, _, summary = collect([str(folders)], 0, sample=20)
    assert len(sample) == 20 and sum(ex.label for ex in sample) == 10
    full_split = splits(full)
    assert all(full_split[ex.hash] == ex.split for ex in sample)  # test images never become training images


def test_workspace_labels_are_training_data(folders, tmp_path):
    from crackdesk.core.scan import scan_folder
    from crackdesk.core.store import Workspace
    from training.data import collect, resolve_source

    site = tmp_path / "site"
    site.mkdir()
    for p in sorted(folders.glob("*/*.png"))[::4]:
        shutil.copy(p, site / f"{p.parent.name}_{p.name}")
    with Workspace(site) as ws:
        ws.sync(scan_folder(site))
        rows = ws.rows()
        ws.set_labels({r.id: ("crack" if r.path.startswith("Positive") else "no_crack") for r in rows[:12]})
    source = resolve_source(site)
    assert source.kind == "workspace" and len(source.files) == 12
    db = site / ".crackdesk" / "workspace.sqlite"
    assert resolve_source(db).kind == "workspace"  # the .sqlite file itself works too
    # combined with the class folders and a sample of them: the workspace is used whole, duplicates once
    examples, _, summary = collect([str(site), str(folders)], 0, sample=30)
    kinds = {s["kind"]: s["used"] for s in summary["sources"]}
    assert kinds["workspace"] == 12 and kinds["folders"] <= 30
    assert summary["duplicates_removed"] >= 12  # the copies in the workspace were seen in the folders too


def test_workspace_correction_outranks_a_folder_label(folders, tmp_path):
    from crackdesk.core.scan import scan_folder
    from crackdesk.core.store import Workspace
    from training.data import collect

    site = tmp_path / "site"
    site.mkdir()
    neg = sorted((folders / "Negative").glob("*.png"))[0]
    shutil.copy(neg, site / "n.png")
    with Workspace(site) as ws:
        ws.sync(scan_folder(site))
        ws.set_labels({ws.rows()[0].id: "crack"})
    examples, _, summary = collect([str(folders), str(site)], 0, None)
    from crackdesk.core.hashing import file_hash

    relabelled = [ex for ex in examples if ex.hash == file_hash(neg)]
    assert len(relabelled) == 1 and relabelled[0].label == 1 and summary["label_conflicts"] == 1


def test_missing_data_path_is_named(tmp_path):
    from crackdesk.core.errors import DatasetError
    from training.data import resolve_source

    with pytest.raises(DatasetError, match="no such file"):
        resolve_source(tmp_path / "absent")


def test_workspace_kept_outside_a_read_only_folder_is_found(folders, tmp_path, monkeypatch):
    """The app keeps the workspace of a folder it cannot write to in the user's data directory."""
    import crackdesk.core.workspace_location as location
    from crackdesk.core.errors import DatasetError
    from crackdesk.core.scan import scan_folder
    from crackdesk.core.store import Workspace
    from training.data import resolve_source

    monkeypatch.setattr(location, "_writable", lambda folder, local: False)
    site = tmp_path / "card"
    shutil.copytree(folders / "Positive", site)
    with Workspace(site) as ws:
        ws.sync(scan_folder(site))
        ws.set_labels({r.id: "crack" for r in ws.rows()[:5]})
        db = ws.db_path
    assert not (site / ".crackdesk").exists()
    source = resolve_source(site)
    assert source.kind == "workspace" and len(source.files) == 5 and all(f.path.exists() for f in source.files)
    with pytest.raises(DatasetError, match="give the image folder"):
        resolve_source(db)

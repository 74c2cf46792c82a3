"""Label exchange without Qt: CSV export, class-folder export (copies and hard links, no overwrites) and
import by content hash into another folder."""

import csv
import shutil

import pytest

from crackdesk.core.demo import write_demo_folder
from crackdesk.core.errors import DatasetError
from crackdesk.core.exchange import export_class_folders, export_csv, import_class_folders
from crackdesk.core.scan import scan_folder
from crackdesk.core.store import open_workspace


@pytest.fixture
def labelled(tmp_path):
    folder = tmp_path / "site"
    write_demo_folder(folder, count=12, seed=3)
    ws = open_workspace(folder)
    ws.sync(scan_folder(folder))
    rows = ws.rows()
    ws.set_labels({r.id: ("crack" if i % 3 == 0 else "no_crack") for i, r in enumerate(rows[:9])})
    yield ws
    ws.close()


def test_csv_has_every_image_with_its_label(labelled, tmp_path):
    out = tmp_path / "labels.csv"
    assert export_csv(labelled, out) == 12
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12
    assert sum(1 for r in rows if r["label"]) == 9
    assert {r["label"] for r in rows} == {"crack", "no_crack", ""}
    assert not list(tmp_path.glob("*.tmp"))


def test_class_folder_export_never_overwrites(labelled, tmp_path):
    out = tmp_path / "dataset"
    (out / "Positive").mkdir(parents=True)
    # The demo folder has IMG_0001.jpg in pier-north: occupy a name the export wants.
    first_crack = next(f for f in labelled.labeled_files() if f.label == "crack")
    (out / "Positive" / first_crack.path.name).write_bytes(b"do not touch")
    report = export_class_folders(labelled, out, link=True)
    assert report.written == 9 and report.renamed == 1
    assert (out / "Positive" / first_crack.path.name).read_bytes() == b"do not touch"
    assert len(list((out / "Positive").iterdir())) == 3 + 1
    assert len(list((out / "Negative").iterdir())) == 6
    assert report.linked == 9


def test_same_name_in_two_subfolders_gets_a_suffix(tmp_path):
    folder = tmp_path / "two"
    (folder / "a").mkdir(parents=True)
    (folder / "b").mkdir()
    write_demo_folder(tmp_path / "src", count=2, seed=1)
    sources = sorted((tmp_path / "src").rglob("*.jpg"))
    shutil.copy(sources[0], folder / "a" / "x.jpg")
    shutil.copy(sources[1], folder / "b" / "x.jpg")
    with open_workspace(folder) as ws:
        ws.sync(scan_folder(folder))
        ws.set_labels({r.id: "crack" for r in ws.rows()})
        report = export_class_folders(ws, tmp_path / "out")
    names = sorted(p.name for p in (tmp_path / "out" / "Positive").iterdir())
    assert names == ["x.jpg", "x_2.jpg"] and report.renamed == 1


def test_import_matches_by_content_in_another_folder(labelled, tmp_path):
    out = tmp_path / "dataset"
    export_class_folders(labelled, out)
    other = tmp_path / "renamed"
    shutil.copytree(labelled.folder, other, ignore=shutil.ignore_patterns(".crackdesk"))
    for i, p in enumerate(sorted(other.rglob("*.jpg"))):
        p.rename(p.with_name(f"renamed_{i}.jpg"))
    with open_workspace(other) as ws:
        ws.sync(scan_folder(other))
        report = import_class_folders(ws, out)
        assert report.matched == 9 and report.unmatched == 0 and report.conflicts == 0
        assert ws.counts()["reviewed"] == 9
        ws.set_labels(report.change.before, source="undo")
        assert ws.counts()["reviewed"] == 0


def test_import_of_a_folder_without_class_folders_is_a_clear_error(labelled, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no class folders"):
        import_class_folders(labelled, tmp_path / "empty")

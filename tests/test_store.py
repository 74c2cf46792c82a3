import sqlite3
import subprocess
import sys
import textwrap

import pytest

from crackdesk.core import workspace_location
from crackdesk.core.errors import WorkspaceError
from crackdesk.core.scan import scan_folder
from crackdesk.core.schema import SCHEMA_VERSION, V1
from crackdesk.core.store import Workspace, open_workspace


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "site"
    (root / "a").mkdir(parents=True)
    for i, data in enumerate([b"one", b"two", b"three"]):
        (root / "a" / f"img{i}.jpg").write_bytes(data)
    return root


def opened(folder):
    ws = open_workspace(folder)
    ws.sync(scan_folder(folder))
    return ws


def ids_by_path(ws):
    return {r.path: r.id for r in ws.rows()}


def test_workspace_lives_in_the_folder_in_wal_mode(folder):
    ws = opened(folder)
    assert ws.db_path == folder.resolve() / ".crackdesk" / "workspace.sqlite"
    assert ws._read("PRAGMA journal_mode")[0][0] == "wal"
    assert ws.count() == 3


def test_read_only_folder_falls_back_to_user_data(folder, monkeypatch, isolated_user_dirs):
    monkeypatch.setattr(workspace_location, "_writable", lambda *a: False)  # root ignores chmod, so pretend
    path = workspace_location.default_workspace_path(folder)
    assert str(path).startswith(str(isolated_user_dirs / "data"))
    assert path.name == "workspace.sqlite"


def test_explicit_workspace_path(folder, tmp_path):
    ws = open_workspace(folder, tmp_path / "elsewhere.sqlite")
    ws.sync(scan_folder(folder))
    assert (tmp_path / "elsewhere.sqlite").exists() and not (folder / ".crackdesk").exists()


def test_labels_survive_rename_and_move(folder):
    ws = opened(folder)
    ws.set_labels({ids_by_path(ws)["a/img0.jpg"]: "crack"})
    ws.close()
    (folder / "b").mkdir()
    (folder / "a" / "img0.jpg").rename(folder / "b" / "renamed.jpg")
    ws = opened(folder)
    for image_id, path in ws.unhashed():
        ws.ensure_hash(image_id)
    labels = {r.path: r.label for r in ws.rows()}
    assert labels == {"a/img1.jpg": None, "a/img2.jpg": None, "b/renamed.jpg": "crack"}


def test_identical_files_share_a_label(folder):
    (folder / "copy.jpg").write_bytes(b"one")
    ws = opened(folder)
    ids = ids_by_path(ws)
    ws.set_labels({ids["a/img0.jpg"]: "no_crack"})
    ws.ensure_hash(ids["copy.jpg"])
    assert ws.label_of(ids["copy.jpg"]) == "no_crack"
    assert len(ws.labeled_files()) == 1  # one training example per distinct content


def test_changed_file_is_rehashed(folder):
    ws = opened(folder)
    ids = ids_by_path(ws)
    first = ws.ensure_hash(ids["a/img1.jpg"])
    (folder / "a" / "img1.jpg").write_bytes(b"different and longer")
    ws.sync(scan_folder(folder))
    assert ws.ensure_hash(ids["a/img1.jpg"]) != first


def test_history_and_undo_of_a_bulk_change(folder):
    ws = opened(folder)
    ids = list(ids_by_path(ws).values())
    first = ws.set_labels({ids[0]: "crack"})
    bulk = ws.set_labels({i: "no_crack" for i in ids})
    assert bulk.before == {ids[0]: "crack", ids[1]: None, ids[2]: None}
    assert bulk.batch == first.batch + 1
    ws.set_labels(bulk.before, source="undo")
    assert [ws.label_of(i) for i in ids] == ["crack", None, None]
    history = ws.history(ids[0])
    assert [(h["old"], h["new"], h["source"]) for h in history] == [
        (None, "crack", "user"), ("crack", "no_crack", "user"), ("no_crack", "crack", "undo")]


def test_rejects_unknown_label(folder):
    ws = opened(folder)
    with pytest.raises(ValueError):
        ws.set_labels({ids_by_path(ws)["a/img0.jpg"]: "maybe"})


def test_predictions_are_kept_per_model_and_counted(folder):
    ws = opened(folder)
    ids = ids_by_path(ws)
    hashes = {p: ws.ensure_hash(i) for p, i in ids.items()}
    ws.set_predictions("m1@1", [(hashes["a/img0.jpg"], 0.9, "crack"), (hashes["a/img1.jpg"], 0.2, "no_crack")])
    ws.set_predictions("m2@1", [(hashes["a/img0.jpg"], 0.1, "no_crack")])
    ws.set_labels({ids["a/img0.jpg"]: "crack"})
    assert {r.path: r.p_crack for r in ws.rows("m1@1")}["a/img0.jpg"] == 0.9
    assert {r.path: r.p_crack for r in ws.rows("m2@1")}["a/img0.jpg"] == 0.1
    assert ws.counts("m1@1") == {"images": 3, "classified": 2, "reviewed": 1, "crack": 1, "no_crack": 1,
                                 "disagree": 0}
    assert ws.counts("m2@1")["disagree"] == 1
    assert ws.prediction_models() == ["m1@1", "m2@1"]


def test_label_survives_kill_minus_9_right_after_the_write(folder):
    """A child process labels an image, reports it, and is SIGKILLed at once: the label must be on disk."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        from crackdesk.core.store import open_workspace
        from crackdesk.core.scan import scan_folder
        ws = open_workspace({str(folder)!r})
        ws.sync(scan_folder({str(folder)!r}))
        rows = ws.rows()
        ws.set_labels({{rows[0].id: "crack", rows[2].id: "no_crack"}})
        print("acknowledged", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == -9 and "acknowledged" in result.stdout
    ws = open_workspace(folder)
    assert [r.label for r in ws.rows()] == ["crack", None, "no_crack"]


def test_newer_schema_is_refused(folder):
    ws = opened(folder)
    ws._write(lambda db: db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),)))
    ws.close()
    with pytest.raises(WorkspaceError, match="newer CrackDesk"):
        open_workspace(folder)


def test_version_1_workspace_is_migrated_keeping_labels(folder):
    db_path = folder / ".crackdesk" / "workspace.sqlite"
    db_path.parent.mkdir()
    db = sqlite3.connect(db_path)
    db.executescript(V1)
    db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    db.execute("INSERT INTO images(path, hash, size, mtime_ns, added) VALUES ('a/img0.jpg', 'h0', 3, 0, 'x')")
    db.execute("INSERT INTO labels VALUES ('h0', 'crack', 'x')")
    db.commit()
    db.close()
    ws = Workspace(folder)
    assert ws._read("SELECT value FROM meta WHERE key='schema_version'")[0][0] == str(SCHEMA_VERSION)
    assert ws.label_of(ws.image_id("a/img0.jpg")) == "crack"
    assert ws.tile_results("h0", "m@1") == []  # v2 table exists


def test_not_a_database(folder):
    (folder / "junk.sqlite").write_text("this is not sqlite " * 100)
    with pytest.raises(WorkspaceError, match="junk.sqlite"):
        open_workspace(folder, folder / "junk.sqlite")


def test_tile_labels_and_results(folder):
    ws = opened(folder)
    image_id = ids_by_path(ws)["a/img2.jpg"]
    digest = ws.ensure_hash(image_id)
    ws.set_tile_results(digest, "m@1", [(0, 0, 227, 227, 0.9), (227, 0, 227, 227, 0.1)])
    assert ws.tile_results(digest, "m@1")[1] == (227, 0, 227, 227, 0.1)
    ws.set_tile_label(image_id, (0, 0, 227, 227), "crack")
    (path, box, label), = ws.labeled_tiles()
    assert path.name == "img2.jpg" and box == (0, 0, 227, 227) and label == "crack"
    ws.set_tile_label(image_id, (0, 0, 227, 227), None)
    assert ws.tile_labels(image_id) == []

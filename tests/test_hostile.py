"""Hostile and unlucky input against the command line and the core (issue 10): each test is a defect a tester
reproduced. Every case must end in one clear line naming the file and the problem, the documented exit
status, no label lost and nothing hung (each child process runs under a timeout). Model files:
test_hostile_models.py; the window: test_hostile_gui.py."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time

import pytest
from factories import write_images
from processes import one_line_error, run_cli

from crackdesk.core.errors import WorkspaceError
from crackdesk.core.scan import scan_folder
from crackdesk.core.store import Workspace, open_workspace


@pytest.fixture
def site(tmp_path):
    folder = tmp_path / "site"
    write_images(folder, 6)
    return folder


def label_three(folder) -> dict:
    with open_workspace(folder) as ws:
        ws.sync(scan_folder(folder))
        rows = ws.rows()
        ws.set_labels({rows[0].id: "crack", rows[1].id: "no_crack", rows[2].id: "crack"})
        return {r.path: r.label for r in ws.rows()}


def labels_now(folder) -> dict:
    with open_workspace(folder) as ws:
        return {r.path: r.label for r in ws.rows()}


# -- 1. --csv never replaces what is not an ordinary output ---------------------------------------------

def test_csv_onto_the_workspace_is_refused_and_no_label_is_lost(site, tiny_model):
    before = label_three(site)
    db = site / ".crackdesk" / "workspace.sqlite"
    result = run_cli("classify", site, "--model", tiny_model, "--csv", db)
    assert result.returncode == 1
    assert "is a database" in one_line_error(result) and str(db) in result.stderr
    assert labels_now(site) == before


def test_csv_onto_a_device_node_is_refused(site, tiny_model, tmp_path):
    device = tmp_path / "full"
    os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 7))  # what /dev/full is, made in our own folder
    result = run_cli("classify", site, "--model", tiny_model, "--csv", device)
    assert result.returncode == 1 and "not a regular file" in one_line_error(result)
    assert stat.S_ISCHR(os.lstat(device).st_mode)


def test_csv_onto_a_symlink_or_a_read_only_file_is_refused(site, tiny_model, tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    result = run_cli("classify", site, "--model", tiny_model, "--csv", link)
    assert result.returncode == 1 and "symbolic link" in one_line_error(result)
    assert link.is_symlink() and target.read_text() == "keep me"
    target.chmod(0o444)
    result = run_cli("classify", site, "--model", tiny_model, "--csv", target, unprivileged=True)
    assert result.returncode == 1 and "read-only" in one_line_error(result)
    assert target.read_text() == "keep me"


def test_csv_respects_the_umask_and_an_existing_files_mode(site, tiny_model, tmp_path):
    out = tmp_path / "new.csv"
    assert run_cli("classify", site, "--model", tiny_model, "--csv", out, umask=0o027).returncode == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    out.chmod(0o604)
    assert run_cli("classify", site, "--model", tiny_model, "--csv", out, umask=0o077).returncode == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o604


@pytest.mark.parametrize("where", ["missing folder", "a folder", "read-only folder"])
def test_bad_csv_location_is_refused_before_classifying(site, tiny_model, tmp_path, where):
    out = {"missing folder": tmp_path / "nowhere" / "o.csv", "a folder": tmp_path,
           "read-only folder": tmp_path / "ro" / "o.csv"}[where]
    if where == "read-only folder":
        out.parent.mkdir()
        out.parent.chmod(0o555)
    result = run_cli("classify", site, "--model", tiny_model, "--csv", out, unprivileged=True)
    assert result.returncode == 1
    line = one_line_error(result)
    assert {"missing folder": "does not exist", "a folder": "is a folder",
            "read-only folder": "permission denied"}[where] in line
    assert not (site / ".crackdesk").exists()  # refused before the run: nothing was classified


# -- 2. file names that are not UTF-8 --------------------------------------------------------------------

def test_a_file_name_that_is_not_utf8_is_classified_like_any_other(site, tiny_model, tmp_path):
    odd = os.fsdecode(b"caf\xe9.png")
    (site / "img_000.png").rename(site / odd)
    out = tmp_path / "out.csv"
    result = run_cli("classify", site, "--model", tiny_model, "--csv", out)
    assert result.returncode == 0, result.stderr
    assert "6 images" in result.stderr and "0 unreadable" in result.stderr
    assert b"caf\xe9.png" in out.read_bytes()  # the CSV names the same file, byte for byte
    with open_workspace(site) as ws:
        rows = {r.path: r for r in ws.rows("tiny@0.1")}
        assert rows[odd].p_crack is not None
        ws.set_labels({rows[odd].id: "crack"})
        assert ws.label_of(rows[odd].id) == "crack"
        assert [f.path.name for f in ws.labeled_files()] == [odd]


def test_a_file_name_that_is_not_utf8_gets_its_thumbnail_and_its_cache_entry(site, tmp_path):
    """The grid's thumbnail worker keyed its disk cache with the name encoded as UTF-8, which a name kept as
    surrogate escapes cannot be: the worker raised, and the card never got its picture."""
    from crackdesk.ui.thumbnails import make_thumbnail

    odd = site / os.fsdecode(b"caf\xe9.png")
    (site / "img_000.png").rename(odd)
    cache = tmp_path / "cache"
    image, error = make_thumbnail(odd, cache)
    assert error is None and image is not None and not image.isNull()
    assert len(list(cache.rglob("*.jpg"))) == 1  # and it is cached like any other


def test_a_newline_or_a_direction_override_in_a_file_name_stays_on_one_line_of_every_message(site, tiny_model,
                                                                                              tmp_path):
    """A name with a newline split the "unreadable:" line in two, and one with U+202E showed another name (the
    characters after it reversed). Both now show as escapes, and the file is still classified or reported."""
    from crackdesk.core.wording import printable

    (site / "bad\nname.jpg").write_text("not a picture")
    (site / "img_001.png").rename(site / "x\u202egnp.exe.png")  # reads as "xexe.png" reversed: a disguise
    result = run_cli("classify", site, "--model", tiny_model)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert any(line.endswith("bad\\nname.jpg: not an image Pillow can read (unknown or corrupt format)")
               for line in lines), result.stderr
    assert all(not line.startswith("name.jpg") for line in lines), result.stderr
    assert "7 images" in result.stderr and "1 unreadable" in result.stderr
    folder = tmp_path / "a\nfolder"
    folder.mkdir()
    assert one_line_error(run_cli("classify", folder / "missing")).endswith("a\\nfolder/missing: folder not found")
    assert printable("x\u202egnp.exe.png") == "x\\u202egnp.exe.png" and "\u202e" not in printable("\u202e")
    assert printable("café 👷\u200d♀️.jpg") == "café 👷\u200d♀️.jpg"  # names in any script stay as they are


# -- 3. only regular files are read ----------------------------------------------------------------------

def test_a_pipe_and_a_link_to_dev_zero_named_jpg_do_not_hang_anything(site, tiny_model, tmp_path):
    os.mkfifo(site / "pipe.jpg")
    (site / "zero.jpg").symlink_to("/dev/zero")
    result = run_cli("classify", site, "--model", tiny_model, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "pipe.jpg: not a regular file" in result.stderr and "zero.jpg: not a regular file" in result.stderr
    assert "8 images" in result.stderr and "2 unreadable" in result.stderr
    heat = run_cli("heatmap", site, "--model", tiny_model, "--out", tmp_path / "heat", timeout=60)
    assert heat.returncode == 0, heat.stderr


def test_a_file_turned_into_a_pipe_after_the_scan_is_an_error_not_a_hang(site, tiny_model):
    from crackdesk.core.inference import Classifier

    path = site / "img_001.png"
    path.unlink()
    os.mkfifo(path)
    started = time.monotonic()
    _, _, error, _ = Classifier(tiny_model).prepare(path)
    assert "not a regular file" in error and time.monotonic() - started < 5


# -- 5. two processes opening a fresh folder at the same moment -------------------------------------------

OPEN_AND_LABEL = textwrap.dedent("""
    import sys, time
    from crackdesk.core.scan import scan_folder
    from crackdesk.core.store import Workspace
    start = float(sys.argv[2])
    while time.time() < start:
        pass
    ws = Workspace(sys.argv[1])
    ws.sync(scan_folder(sys.argv[1]))
    rows = ws.rows()
    ws.set_labels({rows[int(sys.argv[3]) % len(rows)].id: "crack"})
    ws.close()
""")


def test_twenty_simultaneous_opens_of_a_fresh_folder_all_succeed(site):
    start = time.time() + 3  # every child imports first, then all open within a millisecond or two
    children = [subprocess.Popen([sys.executable, "-c", OPEN_AND_LABEL, str(site), str(start), str(i)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(20)]
    results = [(c.wait(120), c.stderr.read()) for c in children]
    assert [code for code, _ in results] == [0] * 20, [err for code, err in results if code][:2]
    assert sum(label == "crack" for label in labels_now(site).values()) == 6


CLASSIFY_AT = textwrap.dedent("""
    import sys, time
    from crackdesk.cli.main import main
    import crackdesk.cli.commands, crackdesk.core.inference  # imported before the start, like the others
    start = float(sys.argv[1])
    while time.time() < start:
        pass
    sys.exit(main(sys.argv[2:]))
""")


def test_ten_simultaneous_classify_runs_all_succeed(site, tiny_model):
    start = time.time() + 4
    children = [subprocess.Popen([sys.executable, "-c", CLASSIFY_AT, str(start), "classify", str(site), "--model",
                                  str(tiny_model)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(10)]
    results = [(c.wait(180), c.stderr.read()) for c in children]
    assert [code for code, _ in results] == [0] * 10, [err for code, err in results if code][:2]


# -- 8, 11, 12. permissions: messages, not tracebacks ----------------------------------------------------

def test_a_folder_nobody_may_read_gives_one_line(tmp_path, tiny_model):
    closed = tmp_path / "closed"
    write_images(closed, 2)
    closed.chmod(0)
    try:
        result = run_cli("classify", closed, "--model", tiny_model, unprivileged=True)
    finally:
        closed.chmod(0o755)
    assert result.returncode == 1
    assert "cannot read the folder (Permission denied)" in one_line_error(result)


def test_an_unreadable_sub_folder_is_reported_and_counted(site, tiny_model):
    hidden = site / "pier3"
    write_images(hidden, 2)
    hidden.chmod(0)
    try:
        result = run_cli("classify", site, "--model", tiny_model, unprivileged=True)
    finally:
        hidden.chmod(0o755)
    assert result.returncode == 0, result.stderr
    assert f"unreadable: {hidden}: cannot read the folder (Permission denied)" in result.stderr
    assert "7 images" in result.stderr and "1 unreadable" in result.stderr


def test_a_read_only_workspace_is_not_hidden_behind_an_empty_one(site, tiny_model, tmp_path):
    before = label_three(site)
    workspace_dir = site / ".crackdesk"
    for f in workspace_dir.iterdir():
        f.chmod(0o444)
    workspace_dir.chmod(0o555)
    env = dict(os.environ, CRACKDESK_DATA_DIR=str(tmp_path / "data"))
    try:
        result = run_cli("classify", site, "--model", tiny_model, unprivileged=True, env=env)
    finally:
        workspace_dir.chmod(0o755)
    assert result.returncode == 1
    line = one_line_error(result)
    assert "read-only" in line and "workspace.sqlite" in line and "--workspace" in line
    assert not (tmp_path / "data" / "workspaces").exists()  # no empty stand-in was made
    assert labels_now(site) == before


def test_a_read_only_folder_without_a_workspace_says_where_it_keeps_one(site, tiny_model, tmp_path):
    site.chmod(0o555)
    env = dict(os.environ, CRACKDESK_DATA_DIR=str(tmp_path / "data"))
    try:
        result = run_cli("classify", site, "--model", tiny_model, unprivileged=True, env=env)
    finally:
        site.chmod(0o755)
    assert result.returncode == 0, result.stderr
    assert f"workspace: {tmp_path / 'data' / 'workspaces'}" in result.stderr and "read-only" in result.stderr


# -- 8. damaged workspaces ----------------------------------------------------------------------------------

def test_a_workspace_with_damaged_pages_gives_one_line(tmp_path, tiny_model):
    folder = tmp_path / "big"
    write_images(folder, 300, size=(16, 16))
    label_three(folder)
    db = folder / ".crackdesk" / "workspace.sqlite"
    with sqlite3.connect(db) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = con.execute("PRAGMA page_size").fetchone()[0]
        root = con.execute("SELECT rootpage FROM sqlite_master WHERE name='images'").fetchone()[0]
    con.close()
    data = bytearray(db.read_bytes())
    assert root > 1
    # The image table's root page, in the middle of the file: the schema (page 1) is intact, so the file
    # opens, and the damage shows only when the images are read.
    data[(root - 1) * page:(root - 1) * page + 64] = b"\xff" * 64
    db.write_bytes(bytes(data))
    result = run_cli("classify", folder, "--model", tiny_model)
    assert result.returncode == 1
    line = one_line_error(result)
    assert "workspace.sqlite" in line and "damaged" in line


def test_a_schema_version_that_is_not_a_number_gives_one_line(site, tiny_model):
    label_three(site)
    with sqlite3.connect(site / ".crackdesk" / "workspace.sqlite") as con:
        con.execute("UPDATE meta SET value='two' WHERE key='schema_version'")
    result = run_cli("classify", site, "--model", tiny_model)
    assert result.returncode == 1 and "schema version is 'two'" in one_line_error(result)


# -- 10. a full disk says so, and loses nothing ------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A real 2 MB filesystem (tmpfs; needs root and mount, as CI has)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True)
    assert mounted.returncode == 0, f"cannot mount a tmpfs for the full-disk test: {mounted.stderr!r}"
    yield disk
    subprocess.run(["umount", "--lazy", str(disk)], check=False)  # detached even if a file is still open


def test_a_full_disk_says_the_disk_is_full_and_keeps_every_saved_label(small_disk):
    folder = small_disk / "site"
    write_images(folder, 4, size=(8, 8))
    ws = Workspace(folder)
    ws.sync(scan_folder(folder))
    ids = [r.id for r in ws.rows()]
    ws.set_labels({ids[0]: "crack"})
    with open(small_disk / "filler", "wb", buffering=0) as f:  # fill what is left (unbuffered: nothing
        # is left to flush on close, which would fail again on the full disk)
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
    with pytest.raises(WorkspaceError) as error:
        ws.set_labels({i: "no_crack" for i in ids[1:]} | {ids[0]: None}, source="user")
    assert "the disk is full" in str(error.value) and "nothing was changed" in str(error.value)
    assert "rollback" not in str(error.value)
    ws.close()
    (small_disk / "filler").unlink()
    with Workspace(folder) as again:
        assert [again.label_of(i) for i in ids] == ["crack", None, None, None]


# -- 13. one pixel limit: refused from the header, never decoded first -----------------------------------

def test_a_225_megapixel_photo_is_refused_from_its_header(tmp_path, tiny_model):
    from test_tiling import write_huge_png

    from crackdesk.core.inference import Classifier

    path = tmp_path / "pano.png"
    write_huge_png(path, 15000, 15000)
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _, _, error, _ = Classifier(tiny_model).prepare(path)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert "too large" in error and "225 Mpx" in error and grown_mib < 100


# -- 14. another program's SQLite file -----------------------------------------------------------------------

def test_another_programs_database_is_refused_untouched(site, tiny_model, tmp_path):
    other = tmp_path / "inventory.sqlite"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE parts(id INTEGER PRIMARY KEY, name TEXT)")
        con.execute("INSERT INTO parts(name) VALUES ('bolt')")
    con.close()
    before = other.read_bytes()
    result = run_cli("classify", site, "--model", tiny_model, "--workspace", other)
    assert result.returncode == 1 and "not a CrackDesk workspace" in one_line_error(result)
    assert other.read_bytes() == before and not other.with_name("inventory.sqlite-wal").exists()


# -- 15. training reads only files inside the workspace's folder ---------------------------------------------

def test_training_ignores_stored_paths_outside_the_folder(site, tmp_path):
    from training.data import resolve_source

    secret = tmp_path / "secret.png"
    write_images(tmp_path / "elsewhere", 1)
    (tmp_path / "elsewhere" / "img_000.png").rename(secret)
    label_three(site)
    with sqlite3.connect(site / ".crackdesk" / "workspace.sqlite") as con:
        con.execute("INSERT INTO images(path, hash, size, mtime_ns, added) VALUES ('../secret.png', 'h', 1, 0, 'x')")
        con.execute("INSERT INTO labels VALUES ('h', 'crack', 'x')")
    source = resolve_source(site)
    assert len(source.files) == 3 and all(f.path.parent == site.resolve() for f in source.files)
    assert source.skipped == [("../secret.png", "the stored path points outside the folder")]


# -- 16. spreadsheet formulas -------------------------------------------------------------------------------

def test_names_that_spreadsheets_would_run_are_quoted_in_csv(site, tiny_model, tmp_path):
    from crackdesk.core.csvfiles import read_csv
    from crackdesk.core.exchange import export_csv

    (site / "img_000.png").rename(site / "=HYPERLINK(1).png")
    (site / "img_001.png").rename(site / "@SUM(1).png")
    out = tmp_path / "out.csv"
    assert run_cli("classify", site, "--model", tiny_model, "--csv", out).returncode == 0
    cells = [line.split(",")[0] for line in out.read_text().splitlines()[1:]]
    assert all(not c.startswith(("=", "+", "-", "@")) for c in cells)
    with open_workspace(site) as ws:
        export_csv(ws, tmp_path / "export.csv", "tiny@0.1")
    paths = [row["path"] for row in read_csv(tmp_path / "export.csv")]
    assert "=HYPERLINK(1).png" in paths and "@SUM(1).png" in paths  # read back as the real names
    assert "\n'=HYPERLINK(1).png," in (tmp_path / "export.csv").read_text()

"""`crackdesk labels import / export` (issue 9): round trip, absolute and relative paths, bad rows refused
whole (or skipped with --skip-bad), and an import that is one history batch like any other change."""

from __future__ import annotations

import csv

from factories import write_images
from processes import one_line_error, run_cli

from crackdesk.core.store import open_workspace


def write_rows(path, rows, header=("path", "label")):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def stored(folder) -> dict:
    with open_workspace(folder) as ws:
        return {r.path: r.label for r in ws.rows() if r.label}


def test_import_then_export_round_trip(tmp_path):
    folder = tmp_path / "site"
    write_images(folder / "pier1", 3)
    write_images(folder / "pier2", 2, seed=4)
    rows = [("pier1/img_000.png", "crack"), (str(folder / "pier1" / "img_001.png"), "no_crack"),
            ("./pier2/img_001.png", "crack"), ("pier1\\img_002.png", "no_crack")]
    result = run_cli("labels", "import", folder, write_rows(tmp_path / "in.csv", rows))
    assert result.returncode == 0, result.stderr
    assert "imported 4 labels (2 crack, 2 no crack)" in result.stderr
    assert stored(folder) == {"pier1/img_000.png": "crack", "pier1/img_001.png": "no_crack",
                              "pier1/img_002.png": "no_crack", "pier2/img_001.png": "crack"}
    out = tmp_path / "out.csv"
    assert run_cli("labels", "export", folder, "--csv", out).returncode == 0
    exported = list(csv.DictReader(out.open()))
    assert list(exported[0]) == ["path", "label", "updated"]
    assert {r["path"]: r["label"] for r in exported} == stored(folder)
    assert all(r["updated"].endswith("Z") for r in exported)
    again = run_cli("labels", "import", folder, out)  # what export writes, import reads
    assert again.returncode == 0 and "imported 0 labels" in again.stderr and "4 already so" in again.stderr


def test_an_import_is_one_undoable_history_batch(tmp_path):
    folder = tmp_path / "site"
    write_images(folder, 4)
    rows = [(f"img_00{i}.png", "crack") for i in range(3)]
    assert run_cli("labels", "import", folder, write_rows(tmp_path / "in.csv", rows)).returncode == 0
    with open_workspace(folder) as ws:
        history = [ws.history(r.id) for r in ws.rows()][:3]
        assert {h[0]["source"] for h in history} == {"import"}
        batches = ws._read("SELECT DISTINCT batch FROM label_history")
        assert len(batches) == 1
        change = ws.set_labels({r.id: None for r in ws.rows()[:3]}, source="undo")  # what Ctrl+Z does
        assert change.before == {r.id: "crack" for r in ws.rows()[:3]}


def test_a_file_with_bad_rows_imports_nothing_and_lists_them(tmp_path):
    folder = tmp_path / "site"
    write_images(folder, 3)
    rows = [("img_000.png", "crack"), ("img_001.png", "maybe"), ("missing.png", "crack"),
            ("../outside.png", "crack"), ("img_002.png", "crack"), ("img_002.png", "no_crack")]
    csv_path = write_rows(tmp_path / "in.csv", rows)
    result = run_cli("labels", "import", folder, csv_path)
    assert result.returncode == 1
    assert "4 of its rows cannot be imported, so nothing was imported" in one_line_error(result)
    for expected in ("line 3: img_001.png: label 'maybe'", "line 4: missing.png: no such image",
                     "line 5: ../outside.png: the path is outside the folder",
                     "line 7: img_002.png: labelled 'crack' on line 6 and 'no_crack' here"):
        assert expected in result.stderr
    assert stored(folder) == {}
    skipped = run_cli("labels", "import", folder, csv_path, "--skip-bad")
    assert skipped.returncode == 0 and "imported 2 labels" in skipped.stderr and "4 rows skipped" in skipped.stderr
    assert stored(folder) == {"img_000.png": "crack", "img_002.png": "crack"}


def test_a_csv_without_the_columns_or_a_missing_file_gives_one_line(tmp_path):
    folder = tmp_path / "site"
    write_images(folder, 2)
    result = run_cli("labels", "import", folder, write_rows(tmp_path / "x.csv", [("a", "b")], ("file", "class")))
    assert result.returncode == 1 and "header lacks path, label" in one_line_error(result)
    result = run_cli("labels", "import", folder, tmp_path / "none.csv")
    assert result.returncode == 1 and "none.csv" in one_line_error(result)
    result = run_cli("labels", "export", folder, "--csv", tmp_path / "no" / "out.csv")
    assert result.returncode == 1 and "does not exist" in one_line_error(result)

"""`crackdesk heatmap`: outputs per image, verdict lines, workspace storage, errors."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from test_tiling import grid_mosaic, write_huge_png

from crackdesk.cli.main import main
from crackdesk.core.store import Workspace, open_workspace


def make_site(folder):
    (folder / "pier").mkdir(parents=True)
    truth = np.zeros((3, 5), bool)
    truth[1, 3] = truth[2, 3] = True  # a crack across two neighbouring tiles
    grid_mosaic(truth).save(folder / "pier" / "IMG_1.jpg", quality=95)
    grid_mosaic(np.zeros((2, 2), bool), seed=3).save(folder / "IMG_2.png")
    grid_mosaic(np.zeros((2, 2), bool), seed=4).save(folder / "IMG_2.jpg", quality=95)  # same stem
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff oops")


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_folder_writes_png_and_csv_per_image_and_fills_the_workspace(tmp_path, tiny_model, capsys):
    site, out = tmp_path / "site", tmp_path / "out"
    make_site(site)
    assert main(["heatmap", str(site), "--model", str(tiny_model), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    rows = read_csv(out / "pier" / "IMG_1_tiles.csv")
    assert list(rows[0]) == ["x", "y", "w", "h", "p_crack"] and len(rows) == 15
    crack_rows = [(int(r["x"]), int(r["y"])) for r in rows if float(r["p_crack"]) >= 0.5]
    assert crack_rows == [(681, 227), (681, 454)]
    with Image.open(out / "pier" / "IMG_1_heatmap.png") as png:
        assert png.size == (1135, 681)
    assert (out / "IMG_2_png_heatmap.png").is_file() and (out / "IMG_2_jpg_tiles.csv").is_file()
    lines = captured.out.splitlines()
    assert len(lines) == 3
    assert any("IMG_1.jpg: crack" in line and "2/15" in line for line in lines)
    assert sum(": no_crack" in line for line in lines) == 2
    assert "broken.jpg" in captured.err and "3 heatmaps (1 unreadable)" in captured.err
    with open_workspace(site) as ws:
        by_path = {r.path: r for r in ws.rows("tiny@0.1")}
        assert by_path["pier/IMG_1.jpg"].predicted == "crack"
        assert by_path["IMG_2.png"].predicted == "no_crack"
        assert by_path["broken.jpg"].predicted is None
        tiles = ws.tile_results(by_path["pier/IMG_1.jpg"].hash, "tiny@0.1")
        assert len(tiles) == 15 and max(tiles, key=lambda t: t[4])[:4] == (681, 227, 227, 227)
        assert sorted(t[4] for t in tiles)[-2] == pytest.approx(by_path["pier/IMG_1.jpg"].p_crack)  # the pair's weaker


def test_a_pipe_named_jpg_counts_as_unreadable_and_an_odd_name_stays_on_one_line(tmp_path, tiny_model, capsys):
    """The summary left out what the scan skipped (a pipe named .jpg), which `classify` counts as unreadable; and a
    name with a newline split its verdict line on stdout in two."""
    import os

    site, out = tmp_path / "site", tmp_path / "out"
    make_site(site)
    (site / "pier" / "IMG_1.jpg").rename(site / "pier" / "IMG\n1.jpg")
    os.mkfifo(site / "camera.jpg")
    assert main(["heatmap", str(site), "--model", str(tiny_model), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 3 and any("pier/IMG\\n1.jpg: crack" in line and "2/15" in line for line in lines), lines
    assert "camera.jpg: not a regular file" in captured.err and "3 heatmaps (2 unreadable)" in captured.err


def test_outputs_inside_the_folder_are_not_processed_again(tmp_path, tiny_model, capsys):
    site = tmp_path / "site"
    make_site(site)
    for _ in range(2):
        assert main(["heatmap", str(site), "--model", str(tiny_model), "--out", str(site / "heatmaps")]) == 0
        assert "3 heatmaps (1 unreadable)" in capsys.readouterr().err
    assert not list((site / "heatmaps").rglob("*_heatmap_heatmap.png"))


def test_single_image_uses_a_workspace_only_when_asked(tmp_path, tiny_model, capsys):
    grid_mosaic(np.array([[True, True]])).save(tmp_path / "wall.png")
    out = tmp_path / "out"
    assert main(["heatmap", str(tmp_path / "wall.png"), "--model", str(tiny_model), "--out", str(out),
                 "--stride", "100"]) == 0
    assert len(read_csv(out / "wall_tiles.csv")) == 4  # x = 0, 100, 200, 227
    assert not (tmp_path / ".crackdesk").exists()
    assert "wall.png: crack" in capsys.readouterr().out
    db = tmp_path / "ws.sqlite"
    assert main(["heatmap", str(tmp_path / "wall.png"), "--model", str(tiny_model), "--out", str(out),
                 "--workspace", str(db)]) == 0
    with Workspace(tmp_path, db) as ws:
        (row,) = ws.rows("tiny@0.1")
        assert row.path == "wall.png" and row.predicted == "crack"
        assert len(ws.tile_results(row.hash, "tiny@0.1")) == 2


def test_errors_are_one_line_and_exit_1_when_nothing_is_read(tmp_path, tiny_model, capsys):
    out = str(tmp_path / "out")
    write_huge_png(tmp_path / "huge.png", 20000, 20000)
    assert main(["heatmap", str(tmp_path / "huge.png"), "--model", str(tiny_model), "--out", out]) == 1
    err = capsys.readouterr().err
    assert "huge.png: image too large (20000x20000" in err and "0 heatmaps (1 unreadable)" in err
    assert main(["heatmap", str(tmp_path / "nope"), "--model", str(tiny_model), "--out", out]) == 1
    assert "nope: no such file or folder" in capsys.readouterr().err
    assert main(["heatmap", str(tmp_path / "huge.png"), "--model", str(tiny_model), "--out", out,
                 "--stride", "500"]) == 1
    assert "larger than the model's patch size (227 px)" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["heatmap", str(tmp_path / "empty"), "--model", str(tiny_model), "--out", out]) == 1
    assert "no images found" in capsys.readouterr().err
    assert main(["heatmap", str(tmp_path / "empty"), "--model", str(tmp_path / "missing.onnx"), "--out", out]) == 1
    assert "missing.onnx: model file not found" in capsys.readouterr().err


def test_command_line_entry_point(tmp_path, tiny_model):
    grid_mosaic(np.array([[True, True]])).save(tmp_path / "w.jpg", quality=95)
    result = subprocess.run([sys.executable, "-m", "crackdesk", "heatmap", str(tmp_path / "w.jpg"), "--model",
                             str(tiny_model), "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "w.jpg: crack" in result.stdout and (tmp_path / "o" / "w_heatmap.png").is_file()
    usage = subprocess.run([sys.executable, "-m", "crackdesk", "heatmap", str(tmp_path / "w.jpg")],
                           capture_output=True, text=True, timeout=120)
    assert usage.returncode == 2 and "--out" in usage.stderr and "Traceback" not in usage.stderr

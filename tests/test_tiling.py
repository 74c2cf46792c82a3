"""Sliding-window heatmaps: geometry, verdict, parity with single-patch classification, memory bound,
cancel, bad files, the store round trip, the overlay. Everything on generated images and a tiny model."""

from __future__ import annotations

import resource
import struct
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from crackdesk.core.datasets import CRACK, NO_CRACK
from crackdesk.core.errors import ImageError
from crackdesk.core.inference import Classifier
from crackdesk.core.overlay import probability_image, render_overlay
from crackdesk.core.tiling import (BATCH, MAX_HEATMAP_PIXELS, TileGrid, heatmap_of_file, heatmap_of_image,
                                   heatmap_stream, mosaic, tile_patch, tiles_from_rows,
                                   window_starts)

P = 227


def plain_patch(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.normal(170, 3, (P, P, 3)).clip(0, 255).astype(np.uint8))


def crack_patch(seed: int) -> Image.Image:
    a = np.asarray(plain_patch(seed)).copy()
    a[100:116, :, :] = 25  # a dark band across: the tiny contrast model's idea of a crack
    return Image.fromarray(a)


def grid_mosaic(truth: np.ndarray, seed: int = 0) -> Image.Image:
    """Mosaic whose tile (r, c) is a crack patch where truth[r, c]."""
    rows, cols = truth.shape
    patches = [(crack_patch if truth[r, c] else plain_patch)(seed + r * cols + c) for r in range(rows) for c in range(cols)]
    return mosaic(patches, cols)


@pytest.fixture
def classifier(tiny_model):
    return Classifier(tiny_model)


def test_window_starts_cover_the_axis_and_end_at_the_border():
    assert window_starts(4032, P, P)[-1] == 4032 - P
    assert window_starts(454, P, P) == [0, 227]
    assert window_starts(500, P, 227) == [0, 227, 273]
    assert window_starts(100, P, P) == [0]
    assert window_starts(500, P, 100) == [0, 100, 200, 273]
    for length in (227, 228, 453, 1000, 3024):
        for stride in (50, 113, 227):
            starts = window_starts(length, P, stride)
            covered = np.zeros(length, bool)
            for s in starts:
                covered[s:s + P] = True
            assert covered.all() and starts[-1] + P == length and starts == sorted(set(starts))


def test_grid_of_a_camera_photo_and_of_a_small_image():
    grid = TileGrid.for_image(4032, 3024, P)
    assert grid.shape == (14, 18) and len(grid) == 252
    assert all(w == h == P and x + w <= 4032 and y + h <= 3024 for x, y, w, h in grid.boxes())
    assert [grid.box(i) for i in range(len(grid))] == grid.boxes()
    with pytest.raises(ValueError, match="stride"):
        TileGrid.for_image(4032, 3024, P, stride=300)  # would leave gaps between tiles
    small = TileGrid.for_image(100, 80, P)
    assert small.boxes() == [(0, 0, 100, 80)]  # one tile: the whole image
    narrow = TileGrid.for_image(100, 500, P)
    assert narrow.boxes() == [(0, 0, 100, P), (0, 227, 100, P), (0, 273, 100, P)]


def test_tiles_follow_the_mosaic_truth_and_the_verdict_needs_neighbouring_tiles(classifier):
    truth = np.zeros((3, 4), bool)
    truth[1, 2] = truth[2, 1] = True  # diagonal neighbours: one crack
    heatmap = heatmap_of_image(classifier, grid_mosaic(truth))
    assert heatmap.grid.shape == (3, 4)
    assert ((heatmap.probs >= classifier.threshold) == truth).all()
    assert heatmap.label == CRACK and heatmap.crack_tiles == 2 and heatmap.crack_fraction == pytest.approx(2 / 12)
    assert {(x, y) for x, y, *_ in heatmap.strongest(2)} == {(454, 227), (227, 454)}
    apart = np.zeros((3, 4), bool)
    apart[0, 0] = apart[2, 3] = True  # two stray tiles far apart, neither near-certain: not a cracked photo
    strays = heatmap_of_image(classifier, grid_mosaic(apart))
    assert strays.crack_tiles == 2 and strays.probs.max() < 0.999 and strays.label == NO_CRACK
    assert "crack" in heatmap.verdict() and "2/12" in heatmap.verdict()
    clean = heatmap_of_image(classifier, grid_mosaic(np.zeros((3, 4), bool)))
    assert clean.label == NO_CRACK and clean.crack_tiles == 0


def test_a_tile_gets_exactly_what_the_patch_alone_gets(classifier, tmp_path):
    truth = np.array([[False, True, False]])
    image = grid_mosaic(truth, seed=5)
    image.save(tmp_path / "m.png")
    heatmap = heatmap_of_file(classifier, tmp_path / "m.png")
    for (x, y, w, h, p) in heatmap.tiles():
        alone = classifier.predict_tensor(classifier.pre(image.crop((x, y, x + w, y + h)))[None])[0]
        assert p == pytest.approx(alone, abs=1e-6)


def test_stride_below_the_patch_overlaps(classifier):
    heatmap = heatmap_of_image(classifier, grid_mosaic(np.array([[False, True]])), stride=100)
    assert [x for x, *_ in heatmap.tiles()] == [0, 100, 200, 227]
    assert heatmap.label == CRACK


def test_a_fine_stride_cuts_tiles_batch_by_batch_with_the_same_result(classifier, tmp_path, monkeypatch):
    from crackdesk.core import tiling

    grid_mosaic(np.array([[False, True, False]]), seed=2).save(tmp_path / "m.png")
    precut = heatmap_of_file(classifier, tmp_path / "m.png", stride=57)
    from crackdesk.core.pipeline import cut_photo, read_photo

    monkeypatch.setattr(tiling, "PRECUT_TILES", 3)  # fewer than the 9 windows: cut lazily, image kept
    photo = cut_photo(classifier, read_photo(classifier, 0, tmp_path / "m.png", tile_all=True), 57)
    assert not isinstance(photo.inputs, np.ndarray) and len(photo.inputs) == 9
    lazy = heatmap_of_file(classifier, tmp_path / "m.png", stride=57)
    assert len(precut.tiles()) == 9 and np.allclose(lazy.probs, precut.probs)


def test_small_image_is_one_tile(classifier, tmp_path):
    crack_patch(1).resize((120, 90)).save(tmp_path / "small.png")
    heatmap = heatmap_of_file(classifier, tmp_path / "small.png")
    assert heatmap.tiles()[0][:4] == (0, 0, 120, 90) and len(heatmap.tiles()) == 1


def write_huge_png(path, width: int, height: int) -> None:
    """A valid 1-bit PNG written row by row: big in pixels, tiny on disk and in memory."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = b"\x00" + b"\xaa" * (width // 8)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
                + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def test_20000_pixel_image_is_refused_before_decoding(classifier, tmp_path):
    path = tmp_path / "huge.png"
    write_huge_png(path, 20000, 20000)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    started = time.perf_counter()
    with pytest.raises(ImageError) as err:
        heatmap_of_file(classifier, path)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert time.perf_counter() - started < 2.0
    assert grown_mib < 50  # decoding would take 400 MiB (1 bit -> 1 byte/px) then 1.1 GiB as RGB
    message = str(err.value)
    assert "huge.png" in message and "20000x20000" in message and "memory" in message
    assert "\n" not in message and 20000 * 20000 > MAX_HEATMAP_PIXELS


def test_corrupt_and_truncated_images_raise_naming_the_file(classifier, tmp_path):
    (tmp_path / "junk.jpg").write_bytes(b"not a picture at all")
    with pytest.raises(ImageError, match="junk.jpg"):
        heatmap_of_file(classifier, tmp_path / "junk.jpg")
    plain_patch(0).resize((800, 600)).save(tmp_path / "whole.jpg", quality=90)
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cut.jpg.*truncated"):
        heatmap_of_file(classifier, tmp_path / "cut.jpg")


def test_cancel_before_and_during(classifier):
    image = grid_mosaic(np.zeros((3, 4), bool))  # 12 tiles: two batches
    cancel = threading.Event()
    cancel.set()
    assert heatmap_of_image(classifier, image, cancel=cancel) is None
    cancel.clear()
    seen = []
    assert heatmap_of_image(classifier, image, cancel=cancel,
                            progress=lambda done, total: (seen.append((done, total)), cancel.set())) is None
    assert seen == [(BATCH, 12)] and BATCH < 12


def test_stream_keeps_order_reports_bad_files_and_stops_on_cancel(classifier, tmp_path):
    paths = []
    for i, truth in enumerate(([[True, True]], [[False, False]], None, [[True, True]])):
        path = tmp_path / f"{i}.png"
        if truth is None:
            path.write_bytes(b"")
        else:
            grid_mosaic(np.array(truth), seed=i).save(path)
        paths.append(path)
    results = list(heatmap_stream(classifier, paths))
    assert [r[0].path for r in results] == paths
    assert [h.label if h else None for _, h in results] == [CRACK, NO_CRACK, None, CRACK]
    assert "empty file" in results[2][0].error and results[2][0].path.name == "2.png"
    assert all(p.hash and p.inputs is None for p, h in results if h)  # windows freed once classified
    cancel = threading.Event()
    got = []
    for prepared, heatmap in heatmap_stream(classifier, paths, cancel=cancel):
        got.append(prepared.path)
        cancel.set()
    assert got == paths[:1]


def test_store_round_trip_and_tile_labels(classifier, tmp_path):
    from crackdesk.core.store import Workspace

    folder = tmp_path / "site"
    folder.mkdir()
    grid_mosaic(np.array([[True, True], [False, False]])).save(folder / "wall.png")
    heatmap = heatmap_of_file(classifier, folder / "wall.png")
    with Workspace(folder) as ws:
        image_id = ws.add_file("wall.png")
        ws.set_tile_results(heatmap.hash, classifier.key, heatmap.tiles())
        ws.set_predictions(classifier.key, [(heatmap.hash, heatmap.p_photo, heatmap.label)])
        rows = ws.tile_results(heatmap.hash, classifier.key)
        assert [r[:4] for r in rows] == [t[:4] for t in heatmap.tiles()]
        assert ws.ensure_hash(image_id) == heatmap.hash
        assert ws.rows(classifier.key)[0].predicted == CRACK
        rebuilt = tiles_from_rows(rows, 454, 454, classifier.threshold)
        assert np.allclose(rebuilt.probs, heatmap.probs) and rebuilt.label == heatmap.label
        ws.set_tile_label(image_id, (227, 0, 227, 227), NO_CRACK)
        assert ws.labeled_tiles() == [(folder.resolve() / "wall.png", (227, 0, 227, 227), NO_CRACK)]
        # what a training loader does with it: crop the box from the decoded photo, then preprocess
        (path, box, label), = ws.labeled_tiles()
        patch = tile_patch(path, box)
        assert patch.size == (227, 227)
        p = classifier.predict_tensor(classifier.pre(patch)[None])[0]
        assert p == pytest.approx(heatmap.probs[0, 1], abs=1e-6)
        with pytest.raises(ImageError, match="outside"):
            tile_patch(path, (300, 300, 227, 227))


def test_overlay_is_red_over_crack_tiles_and_bounded_in_size(classifier):
    truth = np.zeros((2, 3), bool)
    truth[0, 1] = True
    image = grid_mosaic(truth)
    heatmap = heatmap_of_image(classifier, image)
    pmap = probability_image(heatmap, (image.width, image.height))
    assert pmap[100, 300] > 0.9 and pmap[100, 100] < 0.5
    out = render_overlay(image, heatmap, legend=False, grid=False)
    assert out.size == image.size and out.mode == "RGB"
    r, g, b = np.asarray(out)[60, 340].astype(int)  # inside the crack tile, off the band
    r0, g0, b0 = np.asarray(image)[60, 340].astype(int)
    assert r > r0 and b < b0 and g < g0 + 20
    assert max(render_overlay(image.resize((5000, 1000)), heatmap, max_side=2048).size) == 2048


# -- the proof on real data: mosaics of held-out ccic patches, classified by the shipped MobileNetV2 ------

MOSAIC_COLS, MOSAIC_ROWS = 8, 6
CRACK_COUNTS = (0, 0, 0, 0, 0, 0, 1, 2, 6, 12, 24, 48)  # crack patches per mosaic; the rest are no-crack


@pytest.fixture(scope="module")
def shipped_mobilenet():
    from crackdesk.core.models import ModelRegistry

    return Classifier(ModelRegistry().find("mobilenetv2").path)  # shipped in models/: it must load


def held_out_patches(ccic, info):
    """ccic images of the test split the model was trained with (training/data.py: content hash + seed),
    so none of them was seen in training or used to pick the threshold."""
    from training.data import collect, keyed

    seed = info.training.get("seed")
    assert seed is not None, "the shipped model must record its split seed to tell held-out images apart"
    examples, _, _ = collect([str(ccic)], int(seed), None)
    test = [ex for ex in examples if ex.split == "test"]
    pick = sorted(test, key=lambda ex: keyed(int(seed), ex.hash, "mosaic"))  # a seeded shuffle
    return [ex for ex in pick if ex.label == 1], [ex for ex in pick if ex.label == 0]


def test_mosaics_of_held_out_patches_are_localised(shared_data, shipped_mobilenet):
    classifier = shipped_mobilenet
    assert classifier.info.patch_px == P
    cracks, clean = held_out_patches(shared_data / "ccic", classifier.info)
    n = MOSAIC_COLS * MOSAIC_ROWS
    rng = np.random.default_rng(0)
    correct = total = 0
    verdicts = []
    for m, k in enumerate(CRACK_COUNTS):
        truth = np.zeros(n, bool)
        truth[rng.choice(n, k, replace=False)] = True
        patches, c_i, n_i = [], m * n, m * n
        for t in truth:
            ex = cracks[c_i % len(cracks)] if t else clean[n_i % len(clean)]
            c_i, n_i = c_i + t, n_i + (not t)
            patches.append(Image.open(ex.path).convert("RGB"))
        heatmap = heatmap_of_image(classifier, mosaic(patches, MOSAIC_COLS, P), stride=P)
        assert heatmap.grid.shape == (MOSAIC_ROWS, MOSAIC_COLS)
        predicted = heatmap.probs.ravel() >= classifier.threshold
        correct += int((predicted == truth).sum())
        total += n
        verdicts.append((k, heatmap.label, heatmap.crack_tiles))
    accuracy = correct / total
    print(f"\nmosaic tiles: {correct}/{total} right ({accuracy:.2%}); (crack patches, verdict, crack tiles): {verdicts}")
    assert accuracy >= 0.97
    assert all((label == CRACK) == (k > 0) for k, label, _ in verdicts), verdicts


def test_generated_demo_photos(shipped_mobilenet):
    """Synthetic concrete (crackdesk.core.demo) at 6 x 4 tiles: cracked photos are flagged on some tiles, not
    all (the cracks cross part of the photo); clean photos on none."""
    from crackdesk.core.demo import concrete_image

    results = []
    for seed in range(3):
        for crack in (True, False):
            heatmap = heatmap_of_image(shipped_mobilenet, concrete_image(100 + seed, crack, size=(1362, 908), cracks=2))
            results.append((crack, heatmap.label, heatmap.crack_tiles))
    print(f"\ngenerated photos (cracked, verdict, crack tiles of 24): {results}")
    assert all(label == (CRACK if crack else NO_CRACK) for crack, label, _ in results), results
    assert all(0 < n < 24 if crack else n == 0 for crack, _, n in results), results

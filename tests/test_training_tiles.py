"""Tile corrections made in the viewer feed retraining as patches, split together with their photo."""

import numpy as np
from factories import write_images

from crackdesk.core.demo import concrete_image
from crackdesk.core.hashing import file_hash
from crackdesk.core.preprocess import Preprocessing
from crackdesk.core.scan import scan_folder
from crackdesk.core.store import open_workspace
from crackdesk.core.tiling import tile_patch
from training.data import collect, decode_all


def test_workspace_tile_labels_become_patches_split_with_their_photo(tmp_path):
    folder = tmp_path / "site"
    paths = write_images(folder, 24, size=(48, 48))
    concrete_image(4, True, size=(227 * 3, 227 * 2)).save(folder / "photo.jpg", quality=90)
    ws = open_workspace(folder)
    ws.sync(scan_folder(folder))
    ids = {r.path: r.id for r in ws.rows()}
    ws.set_labels({ids[p.name]: "crack" if i % 2 == 0 else "no_crack" for i, p in enumerate(paths)})
    boxes = [(0, 0, 227, 227), (227, 0, 227, 227), (454, 227, 227, 227)]
    for box, label in zip(boxes, ["crack", "no_crack", "crack"]):
        ws.set_tile_label(ids["photo.jpg"], box, label)
    ws.close()

    examples, skipped, _ = collect([str(folder)], seed=0, sample=None)
    tiles = [ex for ex in examples if ex.box is not None]
    assert not skipped and len(examples) == 27 and len(tiles) == 3
    assert {ex.box for ex in tiles} == set(boxes)
    assert [ex.label for ex in sorted(tiles, key=lambda ex: ex.box[::-1])] == [1, 0, 1]
    photo = file_hash(folder / "photo.jpg")
    assert all(ex.group == photo for ex in tiles) and len({ex.split for ex in tiles}) == 1

    prep = Preprocessing((32, 32))
    kept, images, bad = decode_all(tiles, prep)
    assert not bad
    for ex, array in zip(kept, images):
        np.testing.assert_array_equal(array, prep.to_uint8(tile_patch(folder / "photo.jpg", ex.box)))

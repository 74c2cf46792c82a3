"""Features of labelled tiles of large photos: a tile labelled in the viewer is a site-head example of its own,
cut and preprocessed exactly as the heatmap cuts it (tiling.tile_patch, then the model's preprocessing)."""

from __future__ import annotations

from itertools import groupby

import numpy as np

from . import features as codec
from .errors import CrackDeskError
from .tiling import load_for_heatmap, tile_patch


def tile_feature_rows(classifier, workspace, tiles) -> tuple[list, list[str]]:
    """([(hash, box, stored bytes)], problems) for (image id, path, box) tiles; each photo decoded once."""
    rows, problems = [], []
    for (image_id, path), group in groupby(sorted(tiles, key=lambda t: (t[0], t[1])), key=lambda t: (t[0], t[1])):
        boxes = [box for _, _, box in group]
        digest = workspace.hash_of(image_id)
        try:
            photo = load_for_heatmap(workspace.abspath(path))
            patches = [classifier.pre.to_uint8(tile_patch(path, box, photo)) for box in boxes]
        except CrackDeskError as e:
            problems.append(f"{path}: {e.reason} (its tile labels are not used)")
            continue
        _, feats = classifier.run_tensor(classifier.pre.normalize(np.stack(patches)))
        if feats is None:
            problems.append(f"{path}: the model gives no features")
            continue
        rows.extend((digest, box, codec.encode(f)) for box, f in zip(boxes, feats))
    return rows, problems

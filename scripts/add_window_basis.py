"""Add the window basis (decision 48) to replay memory files written before it: the direction of the model's final
layer (the .onnx beside the memory) and the principal directions of the memory's own features, which large photos'
window features are then stored in. The other arrays are copied unchanged; a memory too small for a basis, or of
features narrower than it, is left as it is.

    python scripts/add_window_basis.py models/mobilenetv2.memory.npz models/mobilenetv2-int8.memory.npz
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crackdesk.core.atomic import atomic_write_bytes  # noqa: E402
from crackdesk.core.memory import MEMORY_SUFFIX  # noqa: E402
from crackdesk.core.modeledit import read_head  # noqa: E402
from crackdesk.core.projection import BASIS, MEAN, Projection, fit_basis  # noqa: E402


def add_basis(path: Path) -> str:
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    model = path.with_name(path.name[:-len(MEMORY_SUFFIX)] + ".onnx")
    basis = fit_basis(arrays["features"], read_head(model)[0])
    if basis is None:
        return f"{path}: left as it is ({arrays['features'].shape[0]} rows of {arrays['features'].shape[1]} features)"
    arrays[BASIS], arrays[MEAN] = basis
    projection = Projection(*basis)
    centred = arrays["features"].astype(np.float64) - projection.mean
    kept = float((centred @ projection.basis.T.astype(np.float64)).var(axis=0).sum() / centred.var(axis=0).sum())
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue(), "replay memory")
    return f"{path}: {projection.k} components keep {kept:.1%} of the memory's variance"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("memories", nargs="+", type=Path)
    for path in parser.parse_args().memories:
        print(add_basis(path))


if __name__ == "__main__":
    main()

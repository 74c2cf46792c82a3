"""Choose (and with --write, set) the screening model of a model's large-photo windows (issue 11, fast path).

A window the screening model puts below `below` keeps the screen's P(crack); the others run through the model.
On the model's own ccic split (seeded content hash) this prints, per candidate `below`, how many clean and cracked
patches pass the screen and the cascade's accuracy against the model alone, on validation (where it is chosen) and
test (reported, never used to choose). The rule: the largest candidate that lets every validation crack through,
divided by 10 for a margin on surfaces the screen has not seen.

Usage: .venv/bin/python scripts/calibrate_screen.py [--model mobilenetv2-int8] [--screen cnn] [--write]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crackdesk.core.inference import Classifier  # noqa: E402
from crackdesk.core.models import ModelRegistry, read_model_info  # noqa: E402

CANDIDATES = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)


def probabilities(model: Path, paths: list[Path]) -> np.ndarray:
    classifier = Classifier(model, batch_size=32, exact=True)
    return np.array([p.p_crack for batch in classifier.classify(paths) for p in batch])


def table(split: str, y: np.ndarray, screen: np.ndarray, model: np.ndarray, threshold: float) -> list[dict]:
    rows = []
    alone = ((model >= threshold) == y).mean()
    for below in CANDIDATES:
        passed = screen >= below
        cascade = np.where(passed, model, screen)
        rows.append({"split": split, "below": below, "clean_passed": float(passed[y == 0].mean()),
                     "cracks_stopped": int((~passed & (y == 1)).sum()),
                     "cascade_accuracy": float(((cascade >= threshold) == y).mean()), "model_accuracy": float(alone)})
    return rows


def write_screen(model_path: Path, screen_key: str, below: float) -> None:
    """The screen into the model's metadata; the memory beside it learns the new file's hash (same graph)."""
    import onnx

    from crackdesk.core.memory import memory_path
    from crackdesk.core.modelformat import write_metadata

    info = read_model_info(model_path)
    proto = onnx.load(str(model_path))
    write_metadata(proto, replace(info, screen={"model": screen_key, "below": below}))
    payload = proto.SerializeToString()
    model_path.write_bytes(payload)
    memory = memory_path(model_path)
    if memory.is_file():
        with np.load(memory, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        meta = json.loads(str(arrays["meta"]))
        meta["model_sha256"] = hashlib.sha256(payload).hexdigest()
        arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
        tmp = memory.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        tmp.replace(memory)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mobilenetv2-int8")
    ap.add_argument("--screen", default="cnn")
    ap.add_argument("--ccic", type=Path, default=ROOT.parent / "shared" / "data" / "ccic")
    ap.add_argument("--write", action="store_true", help="set the chosen screen in the model file's metadata")
    args = ap.parse_args()
    from training.data import collect

    registry = ModelRegistry()
    model, screen = registry.find(args.model), registry.find(args.screen)
    seed = int(model.info.training.get("seed", 0))
    examples = collect([str(args.ccic)], seed, None)[0]
    rows = []
    for split in ("val", "test"):
        chosen = [e for e in examples if e.split == split]
        y = np.array([e.label == 1 for e in chosen])
        paths = [e.path for e in chosen]
        rows += table(split, y, probabilities(screen.path, paths), probabilities(model.path, paths),
                      model.info.threshold)
    print(f"model {model.key}, screen {screen.key}; ccic patches of the model's split (seed {seed})")
    print("split  below   clean passed  cracks stopped  cascade accuracy  model alone")
    for r in rows:
        print(f"{r['split']:<5}  {r['below']:<6}  {r['clean_passed']:11.2%}  {r['cracks_stopped']:14d}  "
              f"{r['cascade_accuracy']:15.3%}  {r['model_accuracy']:10.3%}")
    safe = [r["below"] for r in rows if r["split"] == "val" and r["cracks_stopped"] == 0]
    if not safe:
        print("no candidate lets every validation crack through: no screen")
        return 1
    below = max(safe) / 10
    print(f"chosen: below {below:g} (largest letting every validation crack through: {max(safe):g}, / 10)")
    if args.write:
        write_screen(Path(model.path), screen.key, below)
        print(f"wrote screen {screen.key} below {below:g} into {model.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

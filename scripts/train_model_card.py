"""Write models/<name>.md, the model card, from a trained model's own metadata plus a speed measurement.

Usage: .venv/bin/python scripts/train_model_card.py models/mobilenetv2.onnx [--command "..."] [--notes FILE]"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crackdesk.core.models import load_model  # noqa: E402

COMMANDS = {
    "mobilenetv2": ".venv/bin/python -m training ../shared/data/ccic --arch mobilenetv2 --out models/mobilenetv2.onnx "
                   "--weights ../shared/weights/mobilenet_v2_imagenet.pth --seed 0 --name mobilenetv2 --version 1.0.0",
    "cnn": ".venv/bin/python -m training ../shared/data/ccic --arch cnn --out models/cnn.onnx --seed 0 --name cnn "
           "--version 1.0.0",
}


def speed(path: Path, threads: int = 2) -> tuple[float, float]:
    """(ms for one image, images per second in batches of 32) with onnxruntime on `threads` threads."""
    model = load_model(path, threads=threads)
    h, w = model.info.preprocessing.input_size
    name = model.input_name
    one, batch = np.zeros((1, 3, h, w), np.float32), np.zeros((32, 3, h, w), np.float32)
    for _ in range(3):
        model.session.run(None, {name: one})
    start = time.perf_counter()
    for _ in range(20):
        model.session.run(None, {name: one})
    latency = (time.perf_counter() - start) / 20 * 1000
    model.session.run(None, {name: batch})
    start = time.perf_counter()
    for _ in range(5):
        model.session.run(None, {name: batch})
    return latency, 5 * 32 / (time.perf_counter() - start)


def pct(v: float) -> str:
    return f"{100 * v:.2f}%"


def card(path: Path, command: str, notes: str) -> str:
    info = load_model(path).info
    t, m = info.training, info.metrics
    h, w = info.preprocessing.input_size
    latency, throughput = speed(path)
    counts = t["counts"]
    rows = "\n".join(f"| {split} | {c['crack']} | {c['no_crack']} | {c['crack'] + c['no_crack']} |"
                     for split, c in counts.items())
    stages = t.get("stages", {})
    stage_lines = "\n".join(f"- {name}: {s['epochs_run']} epochs run (best {s['best_epoch']}), {s['seconds']:.0f} s"
                            for name, s in stages.items() if isinstance(s, dict))
    cm = m["confusion_matrix"]["values"]
    return f"""# Model card: {info.name} {info.version}

{info.description}. Architecture `{info.architecture}`, input {h}x{w} RGB, output P(crack) (sigmoid), decision
threshold {info.threshold:.4f} (chosen on the validation split). File `models/{path.name}`, {path.stat().st_size / 1e6:.2f} MB,
created {info.created}.

## Data and split
- Training data: `../shared/data/ccic` (Concrete Crack Images for Classification, Özgenel & Gönenç Sorguç 2018,
  CC BY 4.0): 16,000 227x227 JPEG patches, 8,000 Positive (crack) and 8,000 Negative.
- Split: {t['split']}, seed {t['seed']}. Exact duplicates removed: {t['duplicates_removed']}; unreadable skipped: {t['skipped']}.

| split | crack | no crack | total |
|---|---|---|---|
{rows}

- Preprocessing (stored in the file, used identically by training and the app): whole image resized to {h}x{w}
  (bilinear, antialiased), scaled to 0..1, normalised with mean {list(info.preprocessing.mean)} and std
  {list(info.preprocessing.std)}.

## Reproduce
```
{command}
```
(or `scripts/train_shipped.sh {info.name}`; run from the repository root.)

## Test-split metrics (the exported ONNX file through onnxruntime, {m['n']} held-out images)
| accuracy | precision | recall | F1 | ROC AUC |
|---|---|---|---|---|
| {pct(m['accuracy'])} | {pct(m['precision'])} | {pct(m['recall'])} | {pct(m['f1'])} | {m['auc']:.5f} |

Confusion matrix (rows true, columns predicted): no_crack {cm[0]}, crack {cm[1]}.

## Training
- Hardware: {t['hardware']}.
- Wall-clock time, end to end (decoding, training, export, checks): {t['seconds'] / 60:.1f} min.
- Maximum epochs {t['epochs']}, learning rate {t['learning_rate']}, class-balanced loss, early stopping on validation loss.
{stage_lines}
- Export parity: onnxruntime vs torch on validation images, max |difference| {t['parity_max_abs_diff']:.1e}.
{notes}
## Speed (onnxruntime, CPU, 2 threads, this machine)
- One image: {latency:.1f} ms; batches of 32: {throughput:.0f} images/s (preprocessing and decoding not included).

## Limits
- Trained on one dataset of 227x227 patches of concrete surfaces; other surfaces and cameras (see BENCHMARKS.md,
  walls) are less accurate until retrained on an inspector's corrections.
- Full-size photos must be tiled at the patch scale (`patch_px` {info.patch_px}), not squashed into one input.
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", type=Path)
    ap.add_argument("--command")
    ap.add_argument("--notes", type=Path)
    args = ap.parse_args()
    info = load_model(args.model).info
    notes = args.notes.read_text() if args.notes else ""
    text = card(args.model, args.command or COMMANDS.get(info.name, ""), notes)
    args.model.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

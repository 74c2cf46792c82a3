"""`crackdesk train` / `python -m training`: train, evaluate and export a CrackDesk model.

Exit status 0 done, 1 error (one-line message; with --events also an `error` event), 130 cancelled."""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
from pathlib import Path

from crackdesk.core.errors import CrackDeskError

from .archs import ARCHS
from .events import CancelFlag, Cancelled, Reporter


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse exits 2 with usage; we report like every other refusal
        raise CrackDeskError(f"{message} (see --help)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = _Parser(prog="crackdesk train", description="Train a crack / no crack model and export it as a "
                "CrackDesk ONNX file. DATA: class folders (Positive/ and Negative/ or synonyms) or CrackDesk "
                "workspaces (an image folder with .crackdesk/workspace.sqlite, or the .sqlite file).")
    p.add_argument("data", nargs="+", metavar="DATA")
    p.add_argument("--arch", required=True, choices=ARCHS)
    p.add_argument("--out", required=True, type=Path, metavar="MODEL.onnx")
    p.add_argument("--base", type=Path, metavar="MODEL.onnx", help="retrain from this CrackDesk model (same architecture); rehearses its replay memory (MODEL.memory.npz) "
                   "when it has one, training on every workspace label")
    p.add_argument("--compare", type=Path, metavar="MODEL.onnx", help="model to compare with on the validation images and the site's labels (default: --base)")
    p.add_argument("--epochs", type=int, metavar="N", help="maximum epochs (early stopping may end sooner)")
    p.add_argument("--weights", metavar="FILE", help="local MobileNetV2 ImageNet state dict (.pth); or set CRACKDESK_MOBILENET_WEIGHTS")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the split, sampling and training (default 0)")
    p.add_argument("--events", action="store_true", help="JSON lines on stdout (docs/training-events.md)")
    p.add_argument("--sample", type=int, metavar="N", help="use at most N images of each class-folder source (workspaces whole)")
    p.add_argument("--name", help="model name (default: the base's name, or the architecture)")
    p.add_argument("--version", help="model version (default 1.0.0; a timestamp when retraining)")
    p.add_argument("--input-size", type=int, metavar="PX", help="square input side (default 96 cnn, 256 seed-cnn, 160 mobilenetv2)")
    p.add_argument("--quantize", action="store_true", help="int8-quantize, kept only if test accuracy stays within 0.2 points")
    p.add_argument("--description", default="")
    args = p.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        p.error("--epochs must be at least 1")
    if args.sample is not None and args.sample < 2:
        p.error("--sample must be at least 2")
    if args.input_size is not None and not 16 <= args.input_size <= 1024:
        p.error("--input-size must be between 16 and 1024 pixels")
    from crackdesk.core.jsoncheck import IDENTIFIER, IDENTIFIER_RULE

    for option in ("name", "version"):  # refused now, not after minutes of training, when the file is loaded
        value = getattr(args, option)
        if value is not None and not IDENTIFIER.fullmatch(value):
            p.error(f"--{option} must be {IDENTIFIER_RULE}, got {value!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    reporter = Reporter(json_lines="--events" in (argv if argv is not None else sys.argv[1:]))
    cancel = CancelFlag()
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        cancel.install()
    except ValueError:  # not the main thread (e.g. called from a worker): no signal-based cancel
        previous = {}
    try:
        args = parse_args(argv)
        reporter.json_lines = args.events
        from .run import train  # imports torch: after argument errors, which should be instant

        train(args, reporter, cancel)
        return 0
    except Cancelled as e:
        reporter.cancelled(str(e))
        return 130
    except CrackDeskError as e:
        reporter.error(str(e).replace("\n", " "))
        return 1
    except MemoryError:
        reporter.error("out of memory: use --sample to train on fewer images, or a smaller --input-size")
        return 1
    except Exception as e:  # a bug, not a user error: still one `error` event for the GUI, details on stderr
        traceback.print_exc()
        reporter.error(f"training failed unexpectedly: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}")
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

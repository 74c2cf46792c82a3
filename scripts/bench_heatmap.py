"""Heatmap benchmark: a 4032x3024 camera photo at stride 227 (252 tiles) with MobileNetV2, decode included,
and a folder of such photos streamed, with the resident memory after every photo.

    python scripts/bench_heatmap.py [--model mobilenetv2|FILE] [--runs 5] [--photos 12] [--json]

When no MobileNetV2 model is installed it times a stand-in: torchvision's MobileNetV2 (random weights,
one-logit head + sigmoid, 160x160 input, the shipped model's layout) exported to ONNX with CrackDesk
metadata; the compute is the same, the probabilities are meaningless. Photos are generated
(crackdesk.core.demo.concrete_image), saved as JPEG quality 90 like a camera's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crackdesk.core.demo import concrete_image  # noqa: E402
from crackdesk.core.inference import Classifier  # noqa: E402
from crackdesk.core.models import ModelRegistry  # noqa: E402
from crackdesk.core.tiling import heatmap_of_file, heatmap_stream  # noqa: E402

SIZE = (4032, 3024)
# The CLI in a child, reporting its own peak RSS (VmHWM: this program only; a fork's rusage would also count
# the benchmark's pages copied before exec).
CLI_WITH_PEAK = ("import sys; from crackdesk.cli.main import main; rc = main(sys.argv[1:]); "
                 "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0], file=sys.stderr); "
                 "sys.exit(rc)")


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def standin_model(path: Path) -> Path:
    import torch

    from crackdesk.core.modelformat import ModelInfo, write_metadata
    from crackdesk.core.preprocess import Preprocessing
    from training.torchvision_compat import import_torchvision

    import onnx

    net = import_torchvision().models.mobilenet_v2()
    net.classifier = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(1280, 1))
    model = torch.nn.Sequential(net, torch.nn.Sigmoid()).eval()
    torch.onnx.export(model, torch.zeros(1, 3, 160, 160), str(path), input_names=["image"], output_names=["p_crack"],
                      dynamic_axes={"image": {0: "N"}, "p_crack": {0: "N"}}, opset_version=17, dynamo=False)
    proto = onnx.load(str(path))
    write_metadata(proto, ModelInfo("mobilenetv2-standin", "0", "mobilenetv2", Preprocessing((160, 160)),
                                    threshold=0.5, description="benchmark stand-in, random weights"))
    onnx.save(proto, str(path))
    return path


def resolve_model(name: str, work: Path) -> tuple[Path, str]:
    try:
        return ModelRegistry().find(name).path, "installed"
    except Exception as e:  # no shipped model yet: time the same architecture
        print(f"({e}; timing a random-weight MobileNetV2 stand-in)", file=sys.stderr)
        return standin_model(work / "mobilenetv2-standin.onnx"), "stand-in (random weights)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenetv2")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--photos", type=int, default=12)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="crackdesk-bench-heatmap-"))
    try:
        model_path, model_source = resolve_model(args.model, work)
        classifier = Classifier(model_path)
        photos = work / "photos"
        photos.mkdir()
        originals = []
        for seed in range(3):
            path = photos / f"P{seed:04d}.jpg"
            concrete_image(seed, crack=seed != 1, size=SIZE, cracks=3).save(path, quality=90)
            originals.append(path)
        for i in range(3, args.photos):
            shutil.copyfile(originals[i % 3], photos / f"P{i:04d}.jpg")
        one = originals[0]

        heatmap_of_file(classifier, one)  # warm-up: first-run allocations of onnxruntime and Pillow
        runs = []
        for _ in range(args.runs):
            started, cpu = time.perf_counter(), time.process_time()
            heatmap = heatmap_of_file(classifier, one)
            runs.append((time.perf_counter() - started, heatmap.seconds, time.process_time() - cpu))
        runs.sort(key=lambda r: r[0])
        median_s, parts, cpu_s = runs[len(runs) // 2]

        paths = sorted(photos.glob("*.jpg"))
        per_photo, rss = [], []
        started = last = time.perf_counter()
        for prepared, hm in heatmap_stream(classifier, paths):
            now = time.perf_counter()
            per_photo.append(now - last)
            last = now
            rss.append(rss_mib())
        stream_s = time.perf_counter() - started

        cli_started = time.perf_counter()
        cli = subprocess.run([sys.executable, "-c", CLI_WITH_PEAK, "heatmap", str(photos), "--model", str(model_path),
                              "--out", str(work / "out"), "--workspace", str(work / "ws.sqlite")],
                             check=True, capture_output=True, text=True)
        cli_s = time.perf_counter() - cli_started
        cli_peak = float(cli.stderr.strip().splitlines()[-1].split()[1]) / 1024  # VmHWM kB

        result = {
            "model": classifier.key, "model_source": model_source, "photo": f"{SIZE[0]}x{SIZE[1]} JPEG q90",
            "tiles": len(heatmap.grid), "stride": classifier.info.patch_px, "cores": os.cpu_count(),
            "load_average_1min": os.getloadavg()[0],
            "single_median_s": median_s, "single_min_s": runs[0][0], "single_max_s": runs[-1][0],
            "single_parts_s": {k: round(v, 3) for k, v in parts.items()}, "single_cpu_s": cpu_s,
            "stream_photos": len(paths), "stream_s_per_photo": stream_s / len(paths),
            "stream_rss_mib": [round(r) for r in rss],
            "cli_s_per_photo": cli_s / len(paths), "cli_peak_rss_mib": round(cli_peak),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    r = result
    print(f"model {r['model']} ({r['model_source']}), {r['photo']}, {r['tiles']} tiles at stride {r['stride']}, "
          f"{r['cores']} cores, load average {r['load_average_1min']:.1f}")
    print(f"one photo, decode included: median {r['single_median_s']:.3f} s (min {r['single_min_s']:.3f}, "
          f"max {r['single_max_s']:.3f}); parts {r['single_parts_s']}; CPU time (all threads) "
          f"{r['single_cpu_s']:.2f} s")
    print(f"folder of {r['stream_photos']} streamed: {r['stream_s_per_photo']:.3f} s/photo; RSS after each photo "
          f"(MiB): {r['stream_rss_mib']}")
    print(f"crackdesk heatmap CLI (PNG + CSV + workspace): {r['cli_s_per_photo']:.3f} s/photo, "
          f"peak RSS {r['cli_peak_rss_mib']} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`make bench-gui` (scripts/bench_gui.py): the real main window, offscreen, on N images; reports how fast the first
thumbnails appear, the longest GUI stall, the total time to scan, show and classify everything, and
peak memory. The images are hard links to a source folder (a generated demo folder by default), so
40,000 of them cost no disk space; the thumbnail cache starts empty."""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, when run as a script
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "tests"))  # factories: EXIF written with Pillow's API

from host_steal import StealClock, host_share, measured  # noqa: E402


def parse_args(argv):
    p = argparse.ArgumentParser(prog="bench_gui.py", description=__doc__)
    p.add_argument("--images", type=int, default=2000, help="number of images (default 2000)")
    p.add_argument("--folder", help="source images (default: a generated demo folder)")
    p.add_argument("--model", help="model name or .onnx file (default: the default shipped model)")
    p.add_argument("--compare-cli", action="store_true",
                   help="also time the command line's classification of the same images, before and after the GUI")
    p.add_argument("--label", type=int, default=0, metavar="N",
                   help="label N photos one per second while classification runs and N more after it, timing "
                        "each label until the grid shows the refitted site head's probabilities")
    p.add_argument("--camera-thumbnails", action="store_true",
                   help="give each source JPEG the 160-pixel EXIF thumbnail cameras embed (its pixels untouched)")
    p.add_argument("--after-first-screen", action="store_true",
                   help="start classifying once the first screen's thumbnails are all shown, as an inspector who "
                        "looks at the folder before pressing Ctrl+R (default: the moment the folder has loaded, "
                        "racing those thumbnails)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p.parse_args(argv)


def with_camera_thumbnail(source: Path, target: Path) -> Path:
    """A copy of a JPEG with an EXIF block holding a 160-pixel thumbnail of it, as cameras write one: an APP1
    segment inserted after the start marker, the picture's own bytes unchanged."""
    from PIL import Image

    from factories import camera_exif, with_thumbnail

    with Image.open(source) as photo:
        photo.draft("RGB", (160, 160))
        small = photo.convert("RGB")
        small.thumbnail((160, 160))
    app1 = with_thumbnail(camera_exif(), small)
    data = source.read_bytes()
    target.write_bytes(data[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + data[2:])
    return target


def make_images(target: Path, sources: list[Path], count: int) -> None:
    """`count` files in folders of 1,000, hard-linked to the sources in turn (copied if links fail)."""
    for i in range(count):
        source = sources[i % len(sources)]
        folder = target / f"part{i // 1000:03d}"
        if i % 1000 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        dest = folder / f"img_{i:06d}{source.suffix.lower()}"
        try:
            os.link(source, dest)
        except OSError:
            shutil.copyfile(source, dest)


class StallMonitor:
    """A timer that fires every `interval` ms and records how late it was: the longest time the event
    loop could not run anything. For each stall over 50 ms it also records how much of it the GUI thread spent on
    the CPU (busy in a slot: our code) and how much CPU time the hypervisor took from this VM meanwhile (steal: not
    ours); the rest the GUI thread waited, for the GIL or for a core."""

    def __init__(self, interval_ms: int = 10):
        from PySide6.QtCore import Qt, QTimer

        self.interval = interval_ms / 1000
        self.longest = 0.0
        self.stalls: list[tuple[float, float, float, float]] = []  # (when, how long, GUI thread CPU, steal) over 50 ms
        self.steal_clock = StealClock()
        self.last = time.monotonic()
        self.last_cpu = time.thread_time()
        self.last_steal = self.steal_clock.seconds()
        self.timer = QTimer(interval=interval_ms)
        self.timer.setTimerType(Qt.PreciseTimer)
        self.timer.timeout.connect(self._tick)

    def start(self):
        self.last = time.monotonic()
        self.timer.start()

    def _tick(self):
        now, cpu, steal = time.monotonic(), time.thread_time(), self.steal_clock.seconds()
        late = now - self.last - self.interval
        if late > 0.05:
            self.stalls.append((self.last, late, cpu - self.last_cpu, steal - self.last_steal))
        self.longest = max(self.longest, late)
        self.last, self.last_cpu, self.last_steal = now, cpu, steal

    def stop(self):
        self.timer.stop()
        self.steal_clock.close()


class Labeller:
    """Labels a random photo every second (C or N in turn, as a typist would) and times each label until the grid
    holds the probabilities of a site head refitted after it was saved: the first refit (SiteFlow._adapted) of a job
    started once the label was on disk. (Not by label counts: the demo's photos are hard links to 64 files, and
    labels follow content, so two photos can be one label.)"""

    def __init__(self, window, count: int):
        import random

        from PySide6.QtCore import QTimer

        self.window, self.count, self.rng = window, count, random.Random(0)
        self.timer = QTimer(interval=1000)
        self.timer.timeout.connect(self._label)
        self.sent: list[tuple[str, float]] = []  # (phase, when the key was pressed)
        self.saved: list[float] = []  # when each label was on disk, in order
        self.started: dict[int, float] = {}  # id(refit job) -> when it started
        self.refreshed: list[tuple[float, float]] = []  # (its job's start, when the grid had its probabilities)
        self.phase, self.left, self.then = "", 0, None
        real_adapted, real_start, real_saved = window._adapted, window._start_adapt, window._labels_saved

        def adapted(session, ids, state, probs, rank, job=None, **kwargs):
            real_adapted(session, ids, state, probs, rank, job=job, **kwargs)
            if job is not None and id(job) in self.started:
                self.refreshed.append((self.started[id(job)], time.monotonic()))

        def start_adapt():
            now = time.monotonic()
            real_start()
            if window.site_job is not None:
                self.started.setdefault(id(window.site_job), now)

        def labels_saved():
            self.saved.append(time.monotonic())
            real_saved()
        window._adapted, window._start_adapt, window._labels_saved = adapted, start_adapt, labels_saved

    def start(self, phase: str, then=None) -> None:
        self.phase, self.left, self.then = phase, self.count, then
        if self.left and self.window.model.rowCount():
            self.timer.start()
        elif then:
            then()

    def _label(self) -> None:
        if self.left <= 0:
            self.timer.stop()
            if self.then:
                from PySide6.QtCore import QTimer

                QTimer.singleShot(3000, self.then)  # the last refit
            return
        row = self.rng.randrange(self.window.model.rowCount())
        self.window.select_row(row)
        self.window.label_selection("crack" if len(self.sent) % 2 else "no_crack")
        self.sent.append((self.phase, time.monotonic()))
        self.left -= 1

    def results(self) -> dict:
        out = {}
        for k, (phase, when) in enumerate(self.sent):
            saved = self.saved[k] if k < len(self.saved) else None
            shown = [t for started, t in self.refreshed if saved is not None and started >= saved]
            out.setdefault(f"label_refresh_ms_{phase}", []).append(round((min(shown) - when) * 1000) if shown else None)
        return out


def run(args) -> dict:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    work = Path(tempfile.mkdtemp(prefix="crackdesk-bench-"))
    os.environ["CRACKDESK_CACHE_DIR"] = str(work / "thumbnail-cache")  # cold cache: honest thumbnail times
    from PySide6.QtCore import QEventLoop, QTimer

    from crackdesk.core.demo import write_demo_folder
    from crackdesk.core.scan import scan_folder
    from crackdesk.ui.app import make_app
    from crackdesk.ui.main_window import MainWindow
    from crackdesk.ui.settings import Settings

    if args.folder:
        sources = [Path(args.folder) / f.relpath for f in scan_folder(args.folder)]
    else:
        sources = [p for p, _ in write_demo_folder(work / "source", count=64, seed=0)]
    if not sources:
        raise SystemExit(f"bench_gui.py: no images in {args.folder}")
    if args.camera_thumbnails:
        (work / "with-exif").mkdir()
        sources = [with_camera_thumbnail(p, work / "with-exif" / f"{k}.jpg") for k, p in enumerate(sources)]
    folder = work / "images"
    make_images(folder, sources, args.images)
    app = make_app()
    window = MainWindow(Settings(work / "settings.ini"))
    window.choose_model(args.model)
    if window.entry is None:
        raise SystemExit("bench_gui.py: no model available (give --model FILE.onnx)")
    window.resize(1400, 900)
    window.show()
    app.processEvents()
    monitor = StallMonitor()
    marks: dict[str, float] = {}
    loop = QEventLoop()
    window.thumbnails.first_painted.connect(lambda: marks.setdefault("first_thumbnails", time.monotonic()))
    window.model.modelReset.connect(
        lambda: window.model.rowCount() and marks.setdefault("grid_shown", time.monotonic()))

    labeller = Labeller(window, args.label)
    host: dict[str, float] = {}  # steal and CPU at the classification's start, then the host's share of it

    def start_classifying():
        marks["classify_started"] = time.monotonic()
        host.update(steal=monitor.steal_clock.seconds(), cpu=time.process_time())
        window.classify("all")
        labeller.start("during")

    def when_first_screen_shown():
        shown = window.thumbnails.painted_any and window.thumbnails.pending() == 0
        if shown or time.monotonic() - marks["loaded"] > 30:  # not forever where no thumbnail can be made
            start_classifying()
        else:
            QTimer.singleShot(20, when_first_screen_shown)

    def loaded():
        marks["loaded"] = time.monotonic()
        (when_first_screen_shown if args.after_first_screen else start_classifying)()

    def classified(report):
        marks["classified"] = time.monotonic()
        host["share"] = host_share(monitor.steal_clock.seconds() - host["steal"], time.process_time() - host["cpu"])
        marks["classified_n"] = report.classified
        labeller.start("after", then=lambda: QTimer.singleShot(300, loop.quit))

    window.folder_loaded.connect(loaded)
    window.classify_finished.connect(classified)
    # The command line runs before and after the GUI and the GUI is compared with their mean: the VM's speed drifts
    # within minutes, and a baseline on one side only would credit or charge the GUI with that drift.
    cli_runs = [cli_speed(folder, window.entry.path, work / "cli-before.sqlite")] if args.compare_cli else []
    monitor.start()
    start = time.monotonic()
    window.open_folder(folder)
    loop.exec()
    classify_job_seconds = marks["classified"] - marks["classify_started"]
    result = {
        "images": args.images,
        "model": window.entry.key,
        "first_thumbnails_s": round(marks.get("first_thumbnails", float("nan")) - start, 3),
        "grid_shown_s": round(marks.get("grid_shown", float("nan")) - start, 3),
        "store_loaded_s": round(marks["loaded"] - start, 3),
        "classify_started_s": round(marks["classify_started"] - start, 3),
        "classify_s": round(classify_job_seconds, 2),
        "classify_images_per_s": round(args.images / classify_job_seconds, 1),
        "total_s": round(marks["classified"] - start, 2),
        "longest_stall_ms": round(monitor.longest * 1000, 1),
        "host_took": round(host["share"], 3),  # of the core time the GUI's process wanted while classifying
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cpus": os.cpu_count(),
        # when (s), how long, the GUI thread's CPU meanwhile, the VM's steal meanwhile (ms)
        "stalls_over_50ms": [[round(t - start, 2), round(d * 1000), round(c * 1000), round(st * 1000)]
                             for t, d, c, st in monitor.stalls],
    }
    result.update(labeller.results())
    model_path = window.entry.path
    monitor.stop()
    window.close()
    if args.compare_cli:
        cli_runs.append(cli_speed(folder, model_path, work / "cli-after.sqlite"))
        seconds = sum(s for s, _ in cli_runs) / len(cli_runs)
        result.update(cli_classify_s=round(seconds, 2), cli_images_per_s=round(args.images / seconds, 1),
                      cli_runs_s=[round(s, 2) for s, _ in cli_runs],
                      cli_host_took=[round(share, 3) for _, share in cli_runs])
        result["gui_vs_cli"] = round(seconds / classify_job_seconds, 3)
    if args.keep:
        result["folder"] = str(work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return result


def cli_speed(folder: Path, model_path, workspace: Path) -> tuple[float, float]:
    """Seconds of what `crackdesk classify` does, timed the same way (a fresh workspace, every image), and the
    share of its core time the host took."""
    from crackdesk.core.classify import classify_into_workspace
    from crackdesk.core.inference import Classifier
    from crackdesk.core.scan import scan_folder
    from crackdesk.core.store import Workspace

    with Workspace(folder, workspace) as ws:
        ws.sync(scan_folder(folder))
        items = [(r.id, r.path) for r in ws.rows()]
        start = time.monotonic()
        _, host_took = measured(classify_into_workspace, ws, Classifier(model_path), items)
        return time.monotonic() - start, host_took


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"bench-gui: {result['images']:,} images, model {result['model']}, {result['cpus']} CPUs")
    print(f"  grid shown after         {result['grid_shown_s']:.3f} s")
    print(f"  first thumbnails after   {result['first_thumbnails_s']:.3f} s")
    print(f"  store loaded after       {result['store_loaded_s']:.3f} s")
    print(f"  classification started   {result['classify_started_s']:.3f} s"
          f"{' (once the first screen was shown)' if args.after_first_screen else ''}")
    print(f"  classification           {result['classify_s']:.1f} s ({result['classify_images_per_s']:,.0f} images/s)")
    if "cli_images_per_s" in result:
        print(f"  command line             {result['cli_classify_s']:.1f} s ({result['cli_images_per_s']:,.0f} "
              f"images/s; the mean of {' and '.join(f'{s:.1f} s' for s in result['cli_runs_s'])}, before and after "
              f"the GUI); GUI at {result['gui_vs_cli']:.0%} of its speed")
        print(f"  the host took            {result['host_took']:.1%} of the GUI's core time while classifying, "
              f"{' and '.join(f'{s:.1%}' for s in result['cli_host_took'])} of the command line's")
    print(f"  total                    {result['total_s']:.1f} s")
    print(f"  longest GUI stall        {result['longest_stall_ms']:.0f} ms")
    for when, ms, cpu_ms, steal_ms in result["stalls_over_50ms"]:
        print(f"    stall at {when:.2f} s: {ms} ms, of which the GUI thread ran {cpu_ms} ms; the VM's steal meanwhile "
              f"{steal_ms} ms")
    for phase in ("during", "after"):
        values = result.get(f"label_refresh_ms_{phase}")
        if values:
            known = [v for v in values if v is not None]
            print(f"  label -> site head shown ({phase} classification): max {max(known) if known else 'n/a'} ms, "
                  f"median {sorted(known)[len(known) // 2] if known else 'n/a'} ms, "
                  f"{values.count(None)} of {len(values)} never shown")
    print(f"  peak memory (RSS)        {result['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

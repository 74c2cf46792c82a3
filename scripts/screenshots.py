"""`make screenshots`: pictures of the real app for the README, taken offscreen on a generated demo folder.

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/screenshots.py docs

Writes main-window.png, viewer.png and retrain-dialog.png into the folder given. Uses the shipped cnn or
mobilenetv2 model when present (else a small test model), and runs a short real retraining for the
retrain dialog. Nothing is written to the user's own data folders.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def wait_until(app, condition, timeout: float = 300.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise SystemExit("screenshots: timed out waiting for the app")
        app.processEvents()
        time.sleep(0.01)


def settle(app, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def pick_model(work: Path) -> str:
    for name in ("cnn", "mobilenetv2"):
        if (ROOT / "models" / f"{name}.onnx").is_file():
            return name
    sys.path.insert(0, str(ROOT / "tests"))
    from factories import make_tiny_model, tiny_info

    folder = work / "models"
    folder.mkdir()
    make_tiny_model(folder / "demo.onnx", input_size=64,
                    info=tiny_info(64, name="demo-contrast", version="1.0", architecture="cnn",
                                   metrics={"accuracy": 0.81, "f1": 0.78}))
    os.environ["CRACKDESK_MODELS_DIR"] = str(folder)
    return "demo-contrast"


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "docs").resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="crackdesk-shots-"))
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    for var, sub in (("CRACKDESK_DATA_DIR", "data"), ("CRACKDESK_CACHE_DIR", "cache")):
        os.environ[var] = str(work / sub)
    from crackdesk.core.demo import read_truth, write_demo_folder
    from crackdesk.ui.app import make_app
    from crackdesk.ui.main_window import MainWindow
    from crackdesk.ui.settings import Settings

    model = pick_model(work)
    folder = work / "Bridge 14 - pier inspection 2026-11"
    write_demo_folder(folder, count=160, seed=11)
    truth = read_truth(folder)
    app = make_app()
    window = MainWindow(Settings(work / "settings.ini"))
    window.choose_model(model)
    window.resize(1480, 920)
    window.show()
    window.set_thumb_size(150)
    window.open_folder(folder)
    wait_until(app, lambda: window.ws is not None)
    window.classify("all")
    wait_until(app, lambda: window.classifier_job is None and window.model.counts()["classified"] == 160)
    # An inspector's first pass: the first two dozen images reviewed, mostly agreeing with the model.
    m = window.model
    for row in range(24):
        truth_label = truth[m.paths[m.image_index(row)]]
        window.select_row(row)
        window.label_selection(truth_label)
    window.select_row(25)
    settle(app, 2.0)
    wait_until(app, lambda: window.thumbnails.pending() == 0, 30)
    settle(app, 0.5)
    window.grab().save(str(out / "main-window.png"))

    # The viewer on a crack, with a label history (set, changed, set again).
    crack_row = next(r for r in range(24, m.rowCount()) if truth[m.paths[m.image_index(r)]] == "crack")
    window.select_row(crack_row)
    for label in ("no_crack", "crack"):
        window.label_selection(label)
        window.select_row(crack_row)
    window.open_viewer()
    viewer = window.viewer
    viewer.resize(1280, 800)
    wait_until(app, lambda: not viewer.view.item.pixmap().isNull(), 30)
    viewer.view.fit()
    settle(app, 0.5)
    viewer.grab().save(str(out / "viewer.png"))
    viewer.close()

    # A short real retraining on all the folder's labels.
    window.ws.set_labels({int(m.ids[k]): truth[p] for k, p in enumerate(m.paths)})
    window.actions.open_retrain()
    dialog = window.retrain_dialog
    keys = [dialog.base.itemData(i).key if dialog.base.itemData(i) else None for i in range(dialog.base.count())]
    if "cnn@1.0.0" in keys:  # retrain the shipped CNN on this bridge's labels
        dialog.base.setCurrentIndex(keys.index("cnn@1.0.0"))
        dialog.epochs.setValue(6)
    else:
        dialog.base.setCurrentIndex(0)
        dialog.arch.setCurrentIndex(dialog.arch.findData("cnn"))
        dialog.epochs.setValue(8)
        dialog.input_size.setValue(64)
    dialog.name.setText("bridge14-cnn")
    dialog.resize(1240, 700)
    dialog.start_button.click()
    wait_until(app, lambda: dialog.exit_code is not None, 600)
    settle(app, 0.5)
    dialog.grab().save(str(out / "retrain-dialog.png"))
    if dialog.exit_code != 0:
        print(dialog.log.toPlainText(), file=sys.stderr)
    dialog.reject()
    window.close()
    print(f"screenshots: wrote main-window.png, viewer.png, retrain-dialog.png to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

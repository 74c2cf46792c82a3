"""Progress reporting: JSON lines on stdout for the GUI (`--events`, docs/training-events.md), or human
lines and a progress bar on stderr. Training code calls one `Reporter` and never prints itself."""

from __future__ import annotations

import json
import math
import signal
import sys
import time


class Cancelled(Exception):
    """Raised inside training when SIGINT/SIGTERM asked it to stop."""


class CancelFlag:
    """Set by SIGINT/SIGTERM; long loops call `check()` between batches so they stop within a batch."""

    def __init__(self):
        self.is_set = False

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.is_set:  # a second signal: stop now, even inside a long operation
            raise Cancelled("training cancelled; no model was written")
        self.is_set = True

    def check(self) -> None:
        if self.is_set:
            raise Cancelled("training cancelled; no model was written")


def _clean(value):
    """JSON has no NaN/inf: report them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def summary_lines(retention: dict | None, site: dict | None, memory: dict | None) -> list[str]:
    """The `done` event's retention and site comparisons in words, with how many images each rests on."""
    from crackdesk.core.retrain_report import retention_text, site_text

    lines = [text for text in (retention_text(retention), site_text(site)) if text]
    if memory:
        lines.append(f"Replay memory {memory['path']}: {memory['rehearse']:,} rows to rehearse, {memory['holdout']:,} "
                     f"held out, {memory['megabytes']:.1f} MB")
    return lines


class Reporter:
    def __init__(self, json_lines: bool = False, stream_out=None, stream_err=None):
        self.json_lines = json_lines
        self.out = stream_out or sys.stdout
        self.err = stream_err or sys.stderr
        self._progress_start: dict[str, tuple[float, int]] = {}
        self._last_bar = 0.0
        self._bar_open = False

    # -- plumbing -----------------------------------------------------------------------------------
    def _emit(self, event: str, **fields) -> None:
        line = json.dumps(_clean({"event": event, **fields}), sort_keys=False)
        self.out.write(line + "\n")
        self.out.flush()

    def _say(self, text: str) -> None:
        if self._bar_open:
            self.err.write("\n")
            self._bar_open = False
        self.err.write(text + "\n")
        self.err.flush()

    def eta(self, key: str, done: int, total: int) -> float | None:
        """Seconds left, from the rate since this key's first report."""
        now = time.monotonic()
        if key not in self._progress_start or done == 0:
            self._progress_start[key] = (now, done)
            return None
        t0, d0 = self._progress_start[key]
        if done <= d0 or now <= t0:
            return None
        return round((total - done) * (now - t0) / (done - d0), 1)

    # -- events -------------------------------------------------------------------------------------
    def start(self, **fields) -> None:
        if self.json_lines:
            self._emit("start", **fields)
        else:
            c = fields["classes"]
            self._say(f"Training {fields['arch']} -> {fields['out']}: {fields['n_train']} train, "
                      f"{fields['n_val']} validation, {fields['n_test']} test images "
                      f"({c.get('crack', 0)} crack, {c.get('no_crack', 0)} no crack)")
            for item in fields.get("skipped", []):
                self._say(f"  skipped {item['path']}: {item['reason']}")

    def phase(self, phase: str, message: str) -> None:
        self._progress_start.pop(phase, None)
        if self.json_lines:
            self._emit("phase", phase=phase, message=message)
        else:
            self._say(f"[{phase}] {message}")

    def progress(self, phase: str, done: int, total: int) -> None:
        eta = self.eta(phase, done, total)
        now = time.monotonic()
        if done < total and now - self._last_bar < 0.5:
            return  # at most two updates a second, whatever the batch rate
        self._last_bar = now
        if self.json_lines:
            self._emit("progress", phase=phase, done=done, total=total, eta_s=eta)
        else:
            width = 30
            filled = int(width * done / max(total, 1))
            eta_text = f" ETA {eta:.0f}s" if eta is not None else ""
            self.err.write(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{total}{eta_text}   ")
            self._bar_open = done < total
            if done >= total:
                self.err.write("\n")
            self.err.flush()

    def epoch(self, phase: str, epoch: int, epochs: int, train_loss: float, val_loss: float,
              val_accuracy: float, eta_s: float | None) -> None:
        if self.json_lines:
            self._emit("epoch", phase=phase, epoch=epoch, epochs=epochs, train_loss=round(train_loss, 6),
                       val_loss=round(val_loss, 6), val_accuracy=round(val_accuracy, 6), eta_s=eta_s)
        else:
            eta_text = f", ETA {eta_s:.0f}s" if eta_s is not None else ""
            self._say(f"  {phase} epoch {epoch}/{epochs}: train loss {train_loss:.4f}, val loss {val_loss:.4f}, "
                      f"val accuracy {100 * val_accuracy:.2f}%{eta_text}")

    def warning(self, message: str) -> None:
        if self.json_lines:
            self._emit("warning", message=message)
        else:
            self._say(f"warning: {message}")

    def done(self, model: str, info: dict, test: dict, compare: dict | None, seconds: float, retention=None,
             site=None, memory=None) -> None:
        if self.json_lines:
            self._emit("done", model=model, info=info, test=test, compare=compare, retention=retention, site=site,
                       memory=memory, seconds=round(seconds, 2))
            return
        on = f" ({test['data']})" if test.get("data") else ""
        self._say(f"Wrote {model} in {seconds:.0f}s. Test{on}: accuracy {100 * test['accuracy']:.2f}%, "
                  f"precision {100 * test['precision']:.2f}%, recall {100 * test['recall']:.2f}% "
                  f"(n={test['n']}, threshold {test['threshold']:.3f})")
        if compare and compare.get("old") is not None:
            self._say(f"On {compare['images']} validation images: new {100 * compare['new']['accuracy']:.2f}% "
                      f"vs old {100 * compare['old']['accuracy']:.2f}%")
        for line in summary_lines(retention, site, memory):
            self._say(line)

    def error(self, message: str) -> None:
        if self.json_lines:
            self._emit("error", message=message)
        self._say(f"error: {message}")

    def cancelled(self, message: str) -> None:
        if self.json_lines:
            self._emit("cancelled", message=message)
        self._say(message)

"""The workspace's single writer: one thread, one connection, and a queue of commands.

Why: SQLite allows one writer at a time; with several threads (and processes) writing through shared or
separate connections, every place that writes had to get locking, transactions and error handling right,
and several did not (docs/decisions.md, 10). Here nothing else writes. Each command is two functions:
`prepare(db)`, run outside any transaction (it may read files, e.g. hash an image before it is labelled),
and `apply(db)`, run inside the write transaction. Whatever is queued when the writer wakes is committed
together in one transaction (one fsync), each command in its own savepoint, so one failing command does
not take the others with it. A command's Future is resolved only after COMMIT: once it says done, the
change is on disk. Failures are `CrackDeskError`s saying why ("the disk is full").

The schema is created or migrated by this thread before any command runs, inside the write lock.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .db import connect, workspace_error
from .errors import CrackDeskError, WorkspaceError
from .schema import check_is_ours, create_or_migrate

Apply = Callable[[sqlite3.Connection], Any]
Prepare = Callable[[sqlite3.Connection], Any]
MAX_BATCH = 512  # commands per transaction: bounds how long the write lock is held
_STOP = object()


@dataclass
class _Command:
    apply: Apply
    prepare: Prepare | None
    future: Future
    what: str


class WorkspaceWriter:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._ready: Future = Future()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="crackdesk-workspace-writer", daemon=True)
        self._thread.start()
        self._ready.result()  # raises the WorkspaceError of a file that cannot be opened or migrated

    # -- the API ----------------------------------------------------------------------------------
    def submit(self, apply: Apply, prepare: Prepare | None = None, what: str = "save") -> Future:
        """Queue a command; its Future gives apply's result once committed, or a CrackDeskError."""
        future: Future = Future()
        with self._lock:
            if self._closed:
                future.set_exception(WorkspaceError("the workspace is closed; nothing was changed", self.path))
                return future
            self._queue.put(_Command(apply, prepare, future, what))
        return future

    def close(self) -> None:
        """Commit what is queued, then stop. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        if threading.current_thread() is not self._thread:
            self._thread.join()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    # -- the thread -------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            db = self._open()
        except BaseException as e:  # noqa: BLE001 - handed to the opener, who raises it
            self._ready.set_exception(e)
            return
        self._ready.set_result(None)
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    break
                batch, stop = [first], False
                while len(batch) < MAX_BATCH:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is _STOP:
                        stop = True
                        break
                    batch.append(more)
                self._run_batch(db, batch)
                if stop:
                    break
        finally:
            self._fail_queued()
            db.close()

    def _open(self) -> sqlite3.Connection:
        db = connect(self.path)
        try:
            check_is_ours(db, self.path)  # before WAL: switching mode would already change another's file
            self._wal(db)
            create_or_migrate(db, self.path)
        except CrackDeskError:
            db.close()
            raise
        except sqlite3.Error as e:
            db.close()
            raise workspace_error(e, self.path, "open") from None
        return db

    @staticmethod
    def _wal(db: sqlite3.Connection) -> None:
        # Switching a fresh file to WAL needs a moment of exclusive access; with several processes opening
        # the same new folder at once, SQLite can answer "locked" without waiting: try again.
        deadline = time.monotonic() + 30
        while True:
            try:
                db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def _run_batch(self, db: sqlite3.Connection, batch: list[_Command]) -> None:
        ready = []
        for command in batch:
            if not command.future.set_running_or_notify_cancel():
                continue
            try:
                if command.prepare is not None:
                    command.prepare(db)
            except BaseException as e:  # noqa: BLE001 - reported to that command's caller alone
                command.future.set_exception(self._as_error(e))
                continue
            ready.append(command)
        if not ready:
            return
        outcomes: list[tuple[_Command, Any, BaseException | None]] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            for command in ready:
                db.execute("SAVEPOINT command")
                try:
                    result = command.apply(db)
                except BaseException as e:  # noqa: BLE001
                    if not db.in_transaction:
                        raise  # SQLite rolled back the whole transaction (e.g. disk full): all fail
                    db.execute("ROLLBACK TO command")
                    db.execute("RELEASE command")
                    outcomes.append((command, None, self._as_error(e)))
                else:
                    db.execute("RELEASE command")
                    outcomes.append((command, result, None))
            db.execute("COMMIT")
        except BaseException as e:  # noqa: BLE001
            if db.in_transaction:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # the original error says more than the failed rollback
            error = self._as_error(e)
            for command in ready:
                if not command.future.done():
                    command.future.set_exception(error)
            return
        for command, result, error in outcomes:
            if error is None:
                command.future.set_result(result)
            else:
                command.future.set_exception(error)

    def _as_error(self, e: BaseException) -> BaseException:
        if isinstance(e, (CrackDeskError, ValueError)):
            return e
        if isinstance(e, (sqlite3.Error, OSError)):
            return workspace_error(e, self.path)
        return e  # a bug: keep its type and traceback for the developers

    def _fail_queued(self) -> None:
        while True:
            try:
                command = self._queue.get_nowait()
            except queue.Empty:
                return
            if command is not _STOP and command.future.set_running_or_notify_cancel():
                command.future.set_exception(WorkspaceError("the workspace was closed before this was saved",
                                                            self.path))

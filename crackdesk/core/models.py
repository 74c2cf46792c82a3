"""Loading CrackDesk ONNX models and the registry of shipped and user models.

A model is identified in the store by its key `name@version`. Shipped models live in `models/` (inside the
bundle when frozen); imported and retrained ones in the user's data directory, never in the bundle.
"""

from __future__ import annotations

import copy
import functools
import os
import platform
import re
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .atomic import atomic_copy
from .errors import ModelError
from .memory import load_memory, memory_path
from .modelformat import METADATA_KEY, ModelInfo, peek_name, validate_graph
from .paths import file_version, shipped_models_dir, user_models_dir
from .wording import count

# The model a new folder starts with: the int8 fast path of `mobilenetv2` (as accurate on the ccic test split,
# faster on a CPU; models/mobilenetv2-int8.md). The exact float model stays one choice away (`--model
# mobilenetv2`, the Models dialog); a folder keeps the model recorded in its workspace.
DEFAULT_MODEL = "mobilenetv2-int8"
DEFAULT_FLOAT = "mobilenetv2"  # listed right after it (and the default when the int8 file is absent)


def model_key(info: ModelInfo) -> str:
    return f"{info.name}@{info.version}"


def available_providers() -> list[str]:
    """CUDA through onnxruntime when its GPU provider is installed and usable, else CPU."""
    import onnxruntime as ort

    have = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in have] or have


@functools.cache
def int8_sums_saturate() -> bool:
    """Whether onnxruntime's fast uint8 x int8 kernels saturate on this CPU: x86-64 without VNNI multiplies in pairs
    summed into 16 bits (VPMADDUBSW); AVX-512 VNNI and AVX-VNNI sum exactly (decision 45)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # numpy 1
        from numpy.core._multiarray_umath import __cpu_features__ as features
    if features.get("AVX512VNNI"):
        return False
    try:  # AVX-VNNI (256-bit, without AVX-512), which numpy does not report
        return " avx_vnni" not in Path("/proc/cpuinfo").read_text()
    except OSError:
        return True  # exact either way; only slower where VNNI was there


def exact_int8_note(infos) -> str:
    """A sentence for `crackdesk models` and the Models dialog when int8 models among `infos` (ModelInfo) run on
    the exact kernels here, and so about as fast as float; "" otherwise."""
    if not any(info.quantized_from for info in infos) or not int8_sums_saturate():
        return ""
    return ("This CPU has no VNNI, so int8 models run on onnxruntime's exact kernels, about as fast as their float "
            "originals (the fast ones would round their sums differently from other CPUs)")


def session_options(threads: int | None = None):
    """onnxruntime options every CrackDesk session shares: quiet, and int8 arithmetic exact on every CPU (where
    the fast kernels would saturate, the exact uint8 x uint8 ones, about half the speed), so that a photo gets the
    same P and features on every inspector's computer as where its model was made."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # onnxruntime's warnings are for developers, not inspectors
    if threads:
        options.intra_op_num_threads = threads
    if int8_sums_saturate():
        options.add_session_config_entry("session.x64quantprecision", "1")
    return options


def create_session(path: str | Path, threads: int | None = None, spinning: bool = True, optimized: bool = True):
    """An onnxruntime session. spinning=False makes its idle threads sleep instead of busy-waiting,
    leaving the cores to the threads that decode the next batch. optimized=False skips the graph optimizations, for
    a session that only reads the file's metadata and checks its graph (half the time: 9 against 21 ms for
    `mobilenetv2`)."""
    import onnxruntime as ort

    options = session_options(threads)
    if not optimized:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=available_providers())
    except FileNotFoundError:
        raise ModelError("model file not found", path) from None
    except Exception as e:  # onnxruntime raises its own exception types for every parse failure
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"not a valid ONNX model ({first_line[:300]})", path) from None


@dataclass
class LoadedModel:
    info: ModelInfo
    session: object  # onnxruntime.InferenceSession

    @property
    def key(self) -> str:
        return model_key(self.info)

    @property
    def input_name(self) -> str:
        return self.session.get_inputs()[0].name


def load_model(path: str | Path, threads: int | None = None, spinning: bool = True,
               optimized: bool = True) -> LoadedModel:
    """Open and validate a model file; ModelError says what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise ModelError("model file not found", path)
    session = create_session(path, threads, spinning, optimized)
    meta = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in meta:
        raise ModelError(f"an ONNX model, but not a CrackDesk model: its metadata has no '{METADATA_KEY}' "
                         "entry (see docs/model-format.md)", path)
    info = ModelInfo.from_json(meta[METADATA_KEY], path)
    validate_graph(info, session.get_inputs(), session.get_outputs(), path)
    return LoadedModel(info, session)


_shared: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # (file, size, mtime, threads) -> model
_sharing = threading.Lock()


def shared_model(path: str | Path, threads: int) -> LoadedModel:
    """The model file's session as this process already holds it (load_model's otherwise): the app's
    classification, its site adapter and its screening share one copy instead of loading the model two or three
    times, at the same moment, when a folder opens. A session runs batches from several threads at once. A file
    replaced in place (another size or time) is loaded afresh. Its idle threads sleep rather than spin, so
    decoding threads get the cores while the model waits for the next batch."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        raise ModelError("model file not found", path) from None
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, threads)
    with _sharing:  # a second caller waits for the first one's load rather than loading it again
        model = _shared.get(key)
        if model is None:
            model = _shared[key] = load_model(path, threads, spinning=False)
    return model


# Model files' metadata as this process read them, by (path, inode, size, mtime): a command that lists the models
# three times (the default, its screening model, its float original) opens each file once, not three times (an
# onnxruntime session each, 0.01-0.04 s). A file replaced in place is read again.
_read_infos: dict[tuple[str, int, int, int], ModelInfo] = {}
_reading_infos = threading.Lock()


def read_model_info(path: str | Path) -> ModelInfo:
    """A model file's metadata, the file checked as `load_model` checks it (ModelError says what is wrong)."""
    try:
        key = file_version(path)
    except OSError:
        raise ModelError("model file not found", path) from None
    with _reading_infos:
        info = _read_infos.get(key)
    if info is None:
        info = load_model(path, threads=1, optimized=False).info  # outside the lock: a slow file holds up no one
        with _reading_infos:
            _read_infos[key] = info
    return copy.deepcopy(info)  # callers may change theirs (training fills in its figures)


@dataclass
class ModelEntry:
    info: ModelInfo
    source: str  # "shipped" or "user"

    @property
    def path(self) -> Path:
        return self.info.path

    @property
    def key(self) -> str:
        return model_key(self.info)

    @property
    def memory(self) -> Path:
        """The replay memory beside the model file (it may not exist)."""
        return memory_path(self.info.path)


class ModelRegistry:
    def __init__(self, shipped_dir: Path | None = None, user_dir: Path | None = None):
        self.shipped_dir = Path(shipped_dir) if shipped_dir else shipped_models_dir()
        self.user_dir = Path(user_dir) if user_dir else user_models_dir()
        self.problems: list[ModelError] = []  # files in the model folders that failed to load

    def entries(self, wanted: Callable[[str, str], bool] | None = None) -> list[ModelEntry]:
        """Shipped models first (the default first, then its float original), then the user's, newest last. A
        file that cannot be used, for whatever reason, goes to `problems` (naming the file and why) and never
        hides the others. With `wanted(name, version)`, a file whose metadata, peeked at, names a model not wanted
        is skipped unopened (an onnxruntime session each, 10-20 ms, while `classify` looks for one model)."""
        self.problems = []
        found = []
        for source, folder in (("shipped", self.shipped_dir), ("user", self.user_dir)):
            try:
                files = model_files(folder)
            except OSError as e:
                self.problems.append(ModelError(f"the model folder cannot be read ({e.strerror or e})", folder))
                continue
            for path in files:
                if wanted is not None and _surely_another(path, wanted):
                    continue
                try:
                    found.append(ModelEntry(read_model_info(path), source))
                except ModelError as e:
                    self.problems.append(e)
                except Exception as e:  # unforeseen (a vanished file, a library error): still only this file
                    reason = (str(e).strip().splitlines() or [""])[0][:300]
                    self.problems.append(ModelError(f"cannot be read ({type(e).__name__}: {reason})", path))
        found.sort(key=lambda e: (e.source != "shipped", e.info.name != DEFAULT_MODEL, e.info.name != DEFAULT_FLOAT))
        return found

    def find(self, name_or_path: str | Path | None = None) -> ModelEntry:
        """A model by file path, key (`name@version`) or short name (the newest of that name)."""
        if not name_or_path:
            default = self.default()
            if default is not None:
                return default
        name = str(name_or_path or DEFAULT_MODEL)
        candidate = Path(name)
        if candidate.suffix.lower() == ".onnx" or candidate.is_file():
            info = read_model_info(candidate)
            return ModelEntry(info, "file")
        entries = self.entries(lambda n, version: name in (n, f"{n}@{version}"))
        matches = [e for e in entries if e.key == name] or [e for e in entries if e.info.name == name]
        if not matches:
            entries = self.entries()  # to name every model there is
            known = ", ".join(sorted({e.info.name for e in entries})) or "none"
            raise ModelError(f"no model named {name!r} (available: {known}; or give the path of an .onnx file)")
        return matches[-1]

    def default(self) -> ModelEntry | None:
        """The model a new folder starts with: the default shipped one, else its float original, else the first
        there is."""
        for name in (DEFAULT_MODEL, DEFAULT_FLOAT):  # each file opened only if it is the one looked for
            found = next((e for e in self.entries(lambda n, _: n == name) if e.info.name == name), None)
            if found is not None:
                return found
        entries = self.entries()
        return entries[0] if entries else None

    def import_model(self, path: str | Path) -> ModelEntry:
        """Validate a model file and copy it into the user's model folder (atomically)."""
        path = Path(path)
        info = read_model_info(path)
        self.user_dir.mkdir(parents=True, exist_ok=True)
        target = self.user_dir / installed_file_name(info)
        if os.path.dirname(os.path.normpath(target)) != os.path.normpath(self.user_dir):
            raise ModelError(f"refusing to install outside {self.user_dir}", path)  # never: the name has no separators
        if target.exists() and target.resolve() != path.resolve():
            raise ModelError(f"a model {model_key(info)} is already installed; give this one another "
                             "name or version", path)
        memory = memory_path(path)
        if memory.is_file():  # model and replay memory are one unit: the memory goes first, then the model
            load_memory(path, info.features["dim"] if info.features else None)
            atomic_copy(memory, memory_path(target), "replay memory")
        atomic_copy(path, target, "model")
        return ModelEntry(read_model_info(target), "user")

    def export_model(self, entry: ModelEntry, target: str | Path) -> Path:
        """Copy a model and its replay memory (when it has one) to `target` (a .onnx path), memory first, so
        that the copy is never a model without its memory. Returns the model's path."""
        target = Path(target)
        if target.suffix.lower() != ".onnx":
            raise ModelError("an exported model's file name must end in .onnx", target)
        memory = memory_path(entry.path)
        if memory.is_file():
            atomic_copy(memory, memory_path(target), "replay memory")
        else:  # a memory left at the target by an earlier export would be taken for this model's
            memory_path(target).unlink(missing_ok=True)
        atomic_copy(entry.path, target, "model")
        return target

    def remove(self, entry: ModelEntry) -> None:
        """The model first, then its memory: a crash in between leaves a memory without a model (ignored), never
        a model without its memory."""
        if entry.source != "user":
            raise ModelError("shipped models cannot be removed", entry.path)
        entry.path.unlink(missing_ok=True)
        memory_path(entry.path).unlink(missing_ok=True)


def origin(entry: ModelEntry, short: bool = False) -> str:
    """Where a model came from, in a sentence (the Models dialog) or a few words (`crackdesk models`): shipped,
    the int8 fast path of a float model, retrained from another, or adapted to a site."""
    info = entry.info
    site = info.site or {}
    if site:
        text = f"adapted from {site.get('base_model', info.base_model)} to the site '{site.get('folder', '?')}'"
        if short:
            return text
        text += (f" on {count(site.get('labels', 0), 'label')} ({site.get('crack', 0)} crack, "
                 f"{site.get('no_crack', 0)} no crack)")
        retention = site.get("retention") or {}
        if retention.get("site_accuracy") is not None:
            text += (f"; concrete {100 * retention['base_accuracy']:.1f}% → {100 * retention['site_accuracy']:.1f}% "
                     f"on {retention.get('held_out', 0)} held-out images")
        return text
    if info.quantized_from:
        text = f"int8 fast path of {info.quantized_from}"
        if short:
            return text
        return (f"the {text}: quantized and checked against it on the test split, faster on a CPU; the exact float "
                f"model is {info.quantized_from.split('@')[0]}, and retraining starts from it")
    if info.base_model:
        return f"retrained from {info.base_model}"
    return "shipped with CrackDesk" if entry.source == "shipped" else "trained with CrackDesk"


def float_original(info: ModelInfo, registry: "ModelRegistry | None" = None) -> ModelEntry:
    """The float model an int8 one was quantized from (its `quantized_from` key): looked for beside the int8
    file first (a folder of models keeps the pair together), then in the registry (shipped, then the user's).
    Retraining starts from it: the int8 graph's weights are not stored by name, and rounding them twice would
    compound. ModelError, in one line, when it is not there."""
    key = info.quantized_from
    if not key:
        raise ModelError(f"{model_key(info)} is not a quantized model", info.path)
    found = related_model(info, key, registry)
    if found is None:
        raise ModelError(f"{model_key(info)} is the int8 fast path of {key}, and retraining starts from that float "
                         f"model, which is not installed (import {key}, or give its file with --base)", info.path)
    return found


def _surely_another(path: Path, wanted: Callable[[str, str], bool]) -> bool:
    """The file's metadata, peeked at, names a model not `wanted(name, version)`; False when it cannot be peeked at
    (the file is then opened and checked, and reported if broken)."""
    peeked = peek_name(path)
    return peeked is not None and not wanted(*peeked)


def related_model(info: ModelInfo, key: str, registry: "ModelRegistry | None" = None) -> ModelEntry | None:
    """The model `key` that `info` names (its float original, its screening model): looked for beside `info`'s
    file first (a folder of models keeps them together; the newest file with that key, as `ModelRegistry.find`
    picks), then among the installed ones (shipped, then the user's); None when it is nowhere."""
    folders = [info.path.parent] if info.path is not None else []
    for folder in folders:
        beside = []
        for path in model_files(folder):
            if _surely_another(path, lambda n, v: f"{n}@{v}" == key):  # not opened (10-20 ms)
                continue
            try:
                candidate = read_model_info(path)
            except ModelError:
                continue
            if model_key(candidate) == key:
                beside.append(candidate)
        if beside:
            return ModelEntry(beside[-1], "file")
    installed = [entry for entry in (registry or ModelRegistry()).entries(lambda n, v: f"{n}@{v}" == key)
                 if entry.key == key]
    return installed[-1] if installed else None


def model_files(folder: Path) -> list[Path]:
    """The .onnx files in a folder, oldest first; one that cannot be stat'ed (a dangling link, a file
    removed meanwhile) still appears, so that loading it reports it."""
    def modified(path: Path) -> int:
        try:
            return path.stat().st_mtime_ns
        except OSError:
            return 0

    if not folder.is_dir():
        return []
    return sorted(folder.glob("*.onnx"), key=lambda p: (modified(p), p.name))


def installed_file_name(info: ModelInfo) -> str:
    """`name-version.onnx` for the user's models folder. Loading already refuses unsafe names and versions;
    this is built so that it stays inside the folder even if that check is bypassed: only safe characters,
    no leading dot, bounded length."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", f"{info.name}-{info.version}").lstrip(".-")[:150]
    return f"{stem or 'model'}.onnx"

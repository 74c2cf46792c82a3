"""Checks for the values of a JSON document read from a file the user chose (a model's metadata).

Each check returns the value as the app uses it or raises `FieldError` naming the field (`patch_px`,
`preprocessing.std[1]`, `metrics.accuracy`), so the caller can say which file and which field is wrong.
Two traps of Python's json module are closed here: `true` is an int to Python, so bools are refused wherever
a number is wanted; and json.loads accepts `NaN` and `Infinity`, so non-finite numbers are refused wherever
a number is read, however deep.
"""

from __future__ import annotations

import math
import re
import reprlib

# A model name, version or architecture: it ends up in file names and in the key `name@version`, so no
# separators, no leading dot or dash, no `@`, ASCII only, bounded.
IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
IDENTIFIER_RULE = "1 to 64 of the characters A-Z a-z 0-9 . _ - starting with a letter or digit"


class FieldError(ValueError):
    def __init__(self, field: str, problem: str):
        field = field if len(field) <= 100 else field[:97] + "..."  # a path through a file's own long keys
        self.field, self.problem = field, problem
        super().__init__(f"'{field}' {problem}")


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother, _SHORT.maxlist, _SHORT.maxdict = 3, 60, 40, 4, 4


def shown(value) -> str:
    """A value as a message shows it: its repr, cut short in length and depth (a hostile file can hold
    megabytes, or lists nested as deep as the parser allows)."""
    return _SHORT.repr(value)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def integer(value, field: str, lo: int, hi: int | None = None) -> int:
    if not (is_number(value) and isinstance(value, int) and lo <= value and (hi is None or value <= hi)):
        span = f"from {lo} to {hi}" if hi is not None else f"of at least {lo}"
        raise FieldError(field, f"must be an integer {span}, got {shown(value)}")
    return value


def number(value, field: str, lo: float, hi: float, exclusive: bool = False) -> float:
    finite = is_number(value) and not (isinstance(value, float) and not math.isfinite(value))
    if not (finite and (lo < value < hi if exclusive else lo <= value <= hi)):
        span = f"strictly between {lo} and {hi}" if exclusive else f"from {lo} to {hi}"
        raise FieldError(field, f"must be a number {span}, got {shown(value)}")
    return float(value)


def numbers(value, field: str, count: int, lo: float, hi: float) -> tuple[float, ...]:
    if not (isinstance(value, list) and len(value) == count):
        raise FieldError(field, f"must be a list of {count} numbers, got {shown(value)}")
    return tuple(number(v, f"{field}[{i}]", lo, hi) for i, v in enumerate(value))


def text(value, field: str) -> str:
    if not isinstance(value, str):
        raise FieldError(field, f"must be a string, got {shown(value)}")
    return value


def identifier(value, field: str) -> str:
    if not (isinstance(value, str) and IDENTIFIER.fullmatch(value)):
        raise FieldError(field, f"must be {IDENTIFIER_RULE}, got {shown(value)}")
    return value


def model_key(value, field: str) -> str:
    """`name@version` of another model, each part an identifier (the registry's key)."""
    parts = value.split("@") if isinstance(value, str) else []
    if not (len(parts) == 2 and all(IDENTIFIER.fullmatch(p) for p in parts)):
        raise FieldError(field, f"must be a model key NAME@VERSION (each {IDENTIFIER_RULE}), got {shown(value)}")
    return value


def one_of(value, field: str, choices) -> str:
    if not (isinstance(value, str) and value in choices):
        raise FieldError(field, f"must be one of {', '.join(map(repr, choices))}, got {shown(value)}")
    return value


def json_object(value, field: str) -> dict:
    """A JSON object whose numbers, however deep, are all finite (walked without recursion: nesting is
    as deep as the file says)."""
    if not isinstance(value, dict):
        raise FieldError(field, f"must be a JSON object, got {shown(value)}")
    pending = [(field, value)]
    while pending:
        where, v = pending.pop()
        if isinstance(v, dict):
            pending.extend((f"{where}.{k}", x) for k, x in v.items())
        elif isinstance(v, list):
            pending.extend((f"{where}[{i}]", x) for i, x in enumerate(v))
        elif isinstance(v, float) and not math.isfinite(v):
            raise FieldError(where, f"must be a finite number, got {v}")
        elif not (v is None or isinstance(v, (str, int, float))):  # only from a caller's dict, never from JSON
            raise FieldError(where, f"must be a JSON value, got a {type(v).__name__}")
    return dict(value)

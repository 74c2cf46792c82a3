"""Small pieces of the sentences the app shows, in one place."""

from __future__ import annotations


def count(n: int, noun: str, plural: str = "") -> str:
    """"1 label", "2 labels", "1,200 labels": a number with its noun in the right form."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


# Characters that would break a one-line message, or show a name other than the file's: line breaks, tabs and
# other control characters, and the bidirectional marks and overrides that can make "gpj.exe" read as "exe.jpg".
_CONTROLS = [chr(i) for i in (*range(0x20), *range(0x7F, 0xA0))]
_BIDI = [chr(i) for i in (0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))]
_HIDE = str.maketrans({c: c.encode("unicode_escape").decode("ascii") for c in _CONTROLS + _BIDI})


def printable(name: str) -> str:
    """A file name fit for a one-line message or a label on screen: undecodable bytes shown as U+FFFD, control
    and bidirectional-override characters as escapes (a name with a newline stays on one line: "bad\\nname.jpg")."""
    name = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return name if name.isprintable() else name.translate(_HIDE)

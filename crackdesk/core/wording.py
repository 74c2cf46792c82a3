"""Small pieces of the sentences the app shows, in one place."""

from __future__ import annotations


def count(n: int, noun: str, plural: str = "") -> str:
    """"1 label", "2 labels", "1,200 labels": a number with its noun in the right form."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"

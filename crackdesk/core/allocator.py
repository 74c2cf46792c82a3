"""The C heap keeps the memory of one photo for the next, instead of handing it back to the kernel and faulting it in
again.

Every large photo allocates and frees the same big buffers: its decoded pixels (35 MB for 12 Mpx, in Pillow's 16 MB
blocks), its cut windows (17 MB), its bytes. By default glibc serves blocks this large with mmap until one is freed,
then from the heap, and returns the heap's free top to the kernel past a threshold. Each photo then costs thousands of
page faults (the kernel zeroing every page again), and each unmap interrupts every other thread of the process. And a
block reused from the heap is zeroed by `calloc` inside Pillow's `Image.core.new`, holding the GIL: 12-43 ms a photo in
the decoding threads, faulting the pages in as it goes, while neither the GUI thread nor the other decoder can run.

Fixed thresholds (which also turn glibc's moving ones off) keep blocks below `HEAP_BELOW` on the heap and the heap's
free memory mapped, so the next photo reuses pages already there. Measured on 48 camera photos in the GUI
(BENCHMARKS.md, decision 37): classification 11% faster in nine interleaved pairs, none of whose GUI stalls
reached 50 ms while it ran (the old thresholds: 51-84 ms in four of nine), peak memory 40-60 MB higher. The process
keeps its high-water mark until it exits (bounded: a few photos are in flight at a time).
"""

from __future__ import annotations

import ctypes
import sys
from functools import lru_cache

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
HEAP_BELOW = 64 << 20  # a decoded 24 Mpx photo's 16 MB blocks, its windows: all on the heap; a huge panorama mmapped
TRIM_ABOVE = 1 << 30  # free memory at the heap's top given back only past this: in practice never


@lru_cache(maxsize=1)
def keep_freed_memory_for_reuse() -> bool:
    """Set glibc's thresholds, once per process; False where there is no glibc (nothing is changed)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)  # the C library the interpreter runs on
        return bool(libc.mallopt(M_MMAP_THRESHOLD, HEAP_BELOW)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_ABOVE))
    except (OSError, AttributeError):  # musl and other C libraries without mallopt
        return False

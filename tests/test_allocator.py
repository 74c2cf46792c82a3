"""The pipeline keeps freed photo buffers on the C heap for the next photo (core/allocator.py): checked with glibc's
own accounting, in fresh processes, against a process that never ran the pipeline."""

import ctypes
import platform
import subprocess
import sys

import numpy as np
import pytest
from test_tiling import grid_mosaic

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the thresholds are glibc's (mallopt)")

PROBE = r"""
import ctypes, sys
libc = ctypes.CDLL("libc.so.6")

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
if len(sys.argv) > 1:  # classify one large photo first, as the app would
    from crackdesk.core.inference import Classifier
    from crackdesk.core.pipeline import run_photos
    photos = [p for batch in run_photos(Classifier(sys.argv[1]), [sys.argv[2]]) for p in batch]
    assert photos[0].error is None and photos[0].tiled, photos[0]
before = libc.mallinfo2()
block = libc.malloc(16 << 20)  # one of Pillow's blocks of a decoded photo
during = libc.mallinfo2()
libc.free(ctypes.c_void_p(block))
print(during.hblkhd - before.hblkhd, during.arena - libc.mallinfo2().arena)
"""


def probe(*args) -> tuple[int, int]:
    """(bytes of a 16 MiB block served by mmap, bytes the heap gave back when it was freed) in a fresh process."""
    out = subprocess.run([sys.executable, "-c", PROBE, *map(str, args)], capture_output=True, text=True, check=True)
    mapped, given_back = map(int, out.stdout.split())
    return mapped, given_back


def test_after_a_photo_large_blocks_come_from_the_heap_and_stay_there_when_freed(tiny_model, tmp_path):
    photo = tmp_path / "photo.png"
    grid_mosaic(np.zeros((2, 3), bool), seed=1).save(photo)
    mapped, _ = probe()  # glibc's default: a block this large is mapped, and unmapped when freed
    assert mapped >= 16 << 20
    mapped, given_back = probe(tiny_model, photo)
    assert mapped == 0, "a 16 MiB block was mapped from the kernel instead of taken from the heap"
    assert given_back == 0, f"freeing it gave {given_back} bytes of the heap back to the kernel"


def test_the_thresholds_are_set_once_and_report_success():
    from crackdesk.core.allocator import HEAP_BELOW, M_MMAP_THRESHOLD, keep_freed_memory_for_reuse

    keep_freed_memory_for_reuse.cache_clear()
    assert keep_freed_memory_for_reuse() is True
    assert keep_freed_memory_for_reuse() is True
    assert keep_freed_memory_for_reuse.cache_info().misses == 1  # the second call set nothing
    assert ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, HEAP_BELOW) == 1  # glibc accepts what the module sets

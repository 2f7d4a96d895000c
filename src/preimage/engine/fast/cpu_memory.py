"""Keep freed CPU memory in the process for the next optimization step.

glibc's malloc serves every block above a threshold (128 KiB, rising to at
most 32 MiB) with a fresh mmap and unmaps it on free. An optimization step
allocates and frees the same tens of megabytes of activations and gradients
every time, so every step page-faults all of them in again: on this project's
2-core machine a forward + backward pass of 24 images to ``_blocks.2`` of
EfficientNet-Lite0 took 123 ms that way and 76 ms with the memory kept.
PyTorch's CUDA allocator caches freed blocks; on the CPU, ``mallopt`` does the
same for glibc: M_MMAP_MAX = 0 serves large blocks from the heap, and a high
M_TRIM_THRESHOLD keeps freed heap memory for reuse instead of returning it.

The cost: the process keeps its peak memory until it exits. The render loop
calls ``keep_freed_memory`` before optimizing on the CPU; set the environment
variable PREIMAGE_KEEP_FREED_MEMORY=0 to leave malloc alone. Other C
libraries (musl, macOS) are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_KEEP = 2**31 - 1  # bytes of free heap kept before trimming: the most mallopt's int can say

_state = {"done": False, "kept": False}


def keep_freed_memory():
    """Tell glibc's malloc to keep freed memory for reuse (once per process). True if it took
    effect.
    """
    if _state["done"]:
        return _state["kept"]
    _state["done"] = True
    if os.environ.get("PREIMAGE_KEEP_FREED_MEMORY", "1") == "0" or not sys.platform.startswith(
        "linux"
    ):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    kept = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _KEEP))
    _state["kept"] = kept
    return kept

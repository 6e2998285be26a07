"""Keep glibc's heap small on a 1 GB box.

glibc gives threads their own heap arenas (up to 8 per core) and keeps freed memory in each: with
4 cameras' decoder, analysis and inference threads that cost ~50 MiB of resident memory for
nothing. Two arenas measured no CPU cost (bench/results/pipeline_cpu.md). mallopt works at run
time, before the threads start; MALLOC_ARENA_MAX in the environment (systemd unit) does the same.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_ARENA_MAX = -8  # malloc.h


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """True if glibc accepted the limit (False on other C libraries: nothing to do there)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        return False

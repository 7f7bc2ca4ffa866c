"""Keep freed arrays in the process, so a training step or a scoring window reuses pages
instead of faulting fresh ones in.

Every step allocates the same large arrays (gates, caches, logits) and frees them. glibc hands
arrays of more than 128 KiB straight back to the kernel, and the next step's arrays arrive as
fresh pages that the kernel must fault in and zero one 4 KiB page at a time. Measured on the
2-core machine of the README's Speed section (bench, `make bench`): 4,000-7,000 page faults a
step, at about 5 µs each, were 20-30% of a char LSTM training step. Raising glibc's mmap and
trim thresholds keeps the memory in the heap for the next step. Peak memory is unchanged: it
is what a step needs at once; only the handing back after the step is skipped.

Elsewhere (macOS, musl) there is nothing to set and nothing is done.
"""

import ctypes
import functools

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # from glibc's malloc.h
MMAP_THRESHOLD = 32 << 20  # glibc's largest; bigger arrays (a corpus's token ids) are still mmapped
TRIM_THRESHOLD = 1 << 30  # hand memory back only once this much is free at the top of the heap


@functools.cache
def keep_freed_memory() -> bool:
    """Set the thresholds once per process; True when they were set (glibc only)."""
    try:
        libc = ctypes.CDLL(None)  # the process's own symbols, the C library's among them
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # glibc only: other C libraries' mallopt take other options
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))

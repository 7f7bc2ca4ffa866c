"""The allocator keeps a step's freed arrays for the next step (heap.py): no fresh page faults."""

import resource

import numpy as np
import pytest

from lm.heap import keep_freed_memory


def _faults_of_a_step(mib: int = 8, arrays: int = 3) -> int:
    """Page faults of allocating, touching and freeing a few arrays, as a training step does."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    step = [np.ones(mib << 18, dtype=np.float32) for _ in range(arrays)]
    del step
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_the_next_step_reuses_the_freed_arrays_without_page_faults():
    if not keep_freed_memory():
        pytest.skip("not glibc: there is nothing to set")
    _faults_of_a_step()  # the heap grows once
    # 24 MiB of fresh pages would be about 6,000 faults; glibc's defaults give ~1,000 here
    # (the freed top of the heap is handed back), which this test was checked to catch.
    assert _faults_of_a_step() < 64

"""CPU training keeps the memory it frees (``trustgen.runtime.keep_freed_memory``).

A DP step frees and reallocates the same multi-megabyte blocks every step; glibc would map each
afresh (page faults every step). After the call a 4 MB block comes from the heap instead.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from toy import fresh, toy_data
from trustgen.training import TrainConfig, Trainer
from trustgen.training import trainer as trainer_module

glibc = sys.platform.startswith("linux") and "glibc" in " ".join(__import__("platform").libc_ver())

# In a fresh process (the setting is process-wide, and earlier tests may have raised glibc's
# dynamic threshold): is a 4 MB malloc served by mmap before and after the call?
PROBE = textwrap.dedent("""
    import ctypes
    from trustgen.runtime import keep_freed_memory

    class Info(ctypes.Structure):
        _fields_ = [(f, ctypes.c_size_t) for f in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                   "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = Info
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]

    def mapped(size=4 << 20):
        before = libc.mallinfo2().hblkhd
        block = libc.malloc(size)
        grew = libc.mallinfo2().hblkhd - before >= size
        libc.free(block)
        return grew

    print(mapped(), keep_freed_memory(), mapped(), keep_freed_memory())
""")


@pytest.mark.skipif(not glibc, reason="mallopt is glibc's; elsewhere keep_freed_memory returns False")
def test_after_the_call_a_large_block_comes_from_the_heap_not_a_fresh_mapping():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "True", "False", "True"], out


def test_cpu_training_asks_for_it(monkeypatch):
    calls = []
    monkeypatch.setattr(trainer_module, "keep_freed_memory", lambda: calls.append(1) or True)
    x, y = toy_data()
    Trainer(fresh("vae"), TrainConfig(steps=2, batch_size=8, device="cpu")).fit(x, y)
    assert calls == [1]

"""Where computation runs: the device and the process group (a leaf: imports no stage).

Example:
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> dist_info()
    (0, 1)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

import torch

from trustgen.errors import ConfigError

#: glibc's mallopt parameters, and the largest mmap threshold it accepts on 64-bit Linux (32 MB).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 * 2**20
_freed_memory_kept: bool | None = None


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA if available else CPU; a clear error for CUDA requested without one."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ConfigError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was requested but no CUDA GPU is available; use --device cpu or auto")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"unsupported device {device!r}: use auto, cpu or cuda")
    return dev


def keep_freed_memory() -> bool:
    """Let this process reuse the memory it frees instead of handing it back to the OS (glibc).

    A training step allocates and frees the same large temporaries every step (a DP step's
    per-example gradients and Gram matrices: megabytes each). glibc serves such blocks with
    ``mmap``, or trims them off the heap when freed, so each step page-faults them in afresh:
    measured on the 2-core CPU, 8% of a DP step of the diffusion UNet and 2-4% of a non-private
    step (benchmarks/README.md, "DP overhead"). Raising the mmap and trim thresholds keeps freed
    blocks (up to 32 MB) for the next step. The price: the process holds on to its peak memory.
    Process-wide, done once; the trainer calls it for CPU training. Returns whether it took
    effect (False where the C library is not glibc)."""
    global _freed_memory_kept
    if _freed_memory_kept is None:
        _freed_memory_kept = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                mallopt = libc.mallopt
            except (OSError, AttributeError):  # not glibc (musl has no mallopt)
                return False
            _freed_memory_kept = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and \
                bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    return _freed_memory_kept


def spare_core() -> bool:
    """Whether torch's intra-op threads leave this process a CPU core of its own to spare (for a
    helper thread, e.g. the DP noise drawn ahead). Where they take every core, a helper thread
    preempts one of them in the middle of each parallel operation and the others wait for it.
    Counts the cores this process may run on (its affinity), not a container's CPU quota: under
    ``docker --cpus=2`` on a larger host it answers True; set ``prefetch_noise=False`` there."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return torch.get_num_threads() < cores


def dist_info() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) without torch.distributed."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    """True on rank 0 (the one process that writes files when several train)."""
    return dist_info()[0] == 0


def barrier() -> None:
    """Wait for every process of the group (nothing in a single process)."""
    if dist_info()[1] > 1:
        import torch.distributed as dist

        dist.barrier()


def optimizer_params(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    """Every parameter an optimiser updates, in order."""
    return [p for g in opt.param_groups for p in g["params"]]


def average_gradients(opt: torch.optim.Optimizer) -> None:
    """Non-private multi-process training: average gradients over ranks (as DDP does)."""
    _, world = dist_info()
    if world == 1:
        return
    import torch.distributed as dist

    for p in optimizer_params(opt):
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad /= world


def broadcast_bytes(value: bytes) -> bytes:
    """Rank 0's ``value`` on every rank (identity in a single process); all ranks pass the same length."""
    if dist_info()[1] == 1:
        return value
    import torch.distributed as dist

    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor(list(value), dtype=torch.uint8, device=device)
    dist.broadcast(t, src=0)
    return bytes(t.cpu().tolist())

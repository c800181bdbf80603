"""Deterministic job outputs: the torch settings every job runs under, and a record of them.

On a CPU, torch splits full reductions (`sum`, `mean`, the gradient norm clipped in training), the LayerNorm
weight gradient and the embedding gradient into one partial sum per thread, so the number of intra-op
threads changes the float results (tests/test_provenance_determinism.py shows which ops). The runner's
processes get different thread counts (`--workers`), so each job fixes its own: `XFER_THREADS` (default: the
CPUs this process may run on, at most 8 - a property of the machine, not of the runner or its workers);
outputs are identical for every run with the same value. In a container whose CPU limit is below the host's
core count, set `XFER_THREADS` to the limit (the Argo templates do). Matmuls, softmax, attention and cross-entropy did not vary with the thread
count in torch 2.13's CPU build, but nothing promises that for other builds.

On CUDA, cuBLAS and cuDNN pick algorithms that reduce in a run-dependent order unless told not to:
`torch.use_deterministic_algorithms(True)` with `CUBLAS_WORKSPACE_CONFIG=:4096:8` (set before cuBLAS starts),
cuDNN's deterministic mode and no benchmarking. `XFER_DETERMINISTIC`: `warn` (default: an op without a
deterministic CUDA implementation warns and runs anyway), `strict` (such an op is an error), `off`. The cost
is speed where deterministic kernels replace atomics-based ones (not measured on a GPU here). TF32 is fixed
on for float32 matmuls and cuDNN convolutions (training runs in bf16 autocast; TF32 speeds up what stays in
float32, and is as deterministic as float32 on one kind of GPU), so code that flips it cannot change results.

Every job also starts from the same global RNG state (`random`, numpy, torch seeded with 0), so code that draws
from a global generator without seeding gives the same draws whatever ran before it in the process.

What is bit-reproducible: the same job id, run again on the same kind of device with the same software (the
library versions are part of the id), gives the same bytes. Across kinds of hardware (another CPU
microarchitecture, another GPU model, CPU against GPU) kernels differ and outputs differ in the last bits, so
scores agree only to within noise; the id does not name the hardware, `environment()` records it.
"""

from __future__ import annotations

import os
import random

THREADS_ENV, DETERMINISTIC_ENV = "XFER_THREADS", "XFER_DETERMINISTIC"
MAX_DEFAULT_THREADS = 8
CUBLAS_WORKSPACE = ":4096:8"


def threads() -> int:
    """The intra-op thread count jobs run with (`XFER_THREADS`; default: this process's CPUs, at most 8)."""
    value = os.environ.get(THREADS_ENV, str(default_threads()))
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        from xfer.errors import XferError

        raise XferError(f"{THREADS_ENV}={value!r}: give a positive number of threads")
    return n


def default_threads() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_DEFAULT_THREADS))


def mode() -> str:
    value = os.environ.get(DETERMINISTIC_ENV, "warn").strip().lower()
    if value not in ("warn", "strict", "off"):
        from xfer.errors import XferError

        raise XferError(f"{DETERMINISTIC_ENV}={value!r}: give warn, strict or off")
    return value


def configure() -> None:
    """Put this process in the deterministic state a job runs in (called before every job)."""
    import numpy as np
    import torch

    chosen = mode()
    if chosen != "off":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)  # read when cuBLAS starts
    torch.set_num_threads(threads())
    torch.use_deterministic_algorithms(chosen != "off", warn_only=chosen == "warn")
    torch.backends.cudnn.deterministic = chosen != "off"
    torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


def environment() -> dict:
    """What a job ran on and under which settings, for its metadata."""
    import platform

    import torch
    import transformers

    cuda = torch.cuda.is_available()
    return {
        "device": torch.cuda.get_device_name() if cuda else _cpu_name() or platform.machine(),
        "cpu": platform.machine(),
        "cuda": torch.version.cuda if cuda else None,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            return next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "")
    except OSError:
        import platform

        return platform.processor()

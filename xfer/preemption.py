"""Preemption: SIGTERM at any point of a job ends it with exit 75 (EX_TEMPFAIL), after committing what it can.

`xfer job run` and the local runner run every job inside `handling_sigterm()`. From then on SIGTERM (a pod
deleted, a node drained or reclaimed, a spot instance taken back) has one of two effects:

- inside a `deferred()` region (the training loop, an evaluation pass: code that polls `requested()` at safe
  points, where a checkpoint can be committed) it only records the request; the code then commits a
  checkpoint and raises `Preempted` itself;
- anywhere else (loading data, fetching a model, a store commit) it raises `Preempted` at once: nothing
  half-done is ever committed, because every commit publishes its marker last.

The process then exits 75, which the Argo retry policy and `xfer run` treat as "run this job again": it
resumes from its last committed checkpoint. This module is the one place that decides what SIGTERM does.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

from xfer.errors import Preempted

_state = threading.local()
_requested = threading.Event()


def requested() -> bool:
    """True once SIGTERM has arrived while a job runs."""
    return _requested.is_set()


def _deferring() -> bool:
    return getattr(_state, "depth", 0) > 0


def _handle(signum, frame) -> None:
    _requested.set()
    if not _deferring():
        raise Preempted(f"stopped by signal {signal.Signals(signum).name} before any checkpoint could be taken")


@contextmanager
def handling_sigterm() -> Iterator[None]:
    """Install the SIGTERM handler for the job run inside the block (main thread only; elsewhere a no-op)."""
    _requested.clear()
    try:
        previous = signal.signal(signal.SIGTERM, _handle)
    except ValueError:  # not the main thread: signals cannot be handled here
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        _requested.clear()


@contextmanager
def deferred() -> Iterator[None]:
    """A region that polls `requested()` itself: SIGTERM inside it only sets the flag."""
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1


def check(what: str) -> None:
    """Raise `Preempted` if SIGTERM has arrived (call at a point where stopping loses nothing)."""
    if _requested.is_set():
        raise Preempted(f"stopped by SIGTERM {what}")


def request() -> None:
    """Ask the running job to stop as SIGTERM would (tests, and a runner forwarding a signal)."""
    _requested.set()

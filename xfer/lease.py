"""Leases: which runner is running a job right now, recorded in the store, so that a second runner (another
`xfer run` on the same store, a retried pod while the first one lives) skips or waits for that job instead
of training it again.

A lease is the object `leases/<job id>.json` = {"owner", "token", "ttl_seconds", "renewals", "process"}. It
is live while the store says it was written less than `ttl_seconds` ago - by the store's own clock (a file's
mtime, S3's LastModified against the server's Date header), so no two machines' clocks are compared. Its
holder rewrites it every ttl/4 seconds from a heartbeat thread; a runner that dies stops renewing, and once
its lease is older than the ttl the next runner takes the job over. A lease whose holder ran on this very
machine (same host, boot and PID namespace: "process") in a process that no longer exists is taken over at
once: `kill -9` and run again resumes at once.

    with lease.hold(store, job.id, wait=False) as held:   # RunningElsewhere if another live owner holds it
        ...                                                # held.lost is set if another runner took over

Taking a lease: read it; if another owner's lease is live, raise RunningElsewhere (wait=False, the local
runner's default: the job is reported as "running elsewhere") or poll until it is released or expires
(wait=True, the default of `xfer job run`, so a pod never reports a job done that is still running
elsewhere); the choice is $XFER_IF_RUNNING=skip|wait. Otherwise write our lease, wait the store's settle
interval and read it back: if another taker's write landed last, start over. A lease is an economy, not a
lock: on a store without compare-and-swap two runners may in a narrow race both hold one and both train the
job; the commit protocol (xfer/store.py) still publishes exactly one output. The ttl is $XFER_LEASE_SECONDS
(default 60).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from xfer.errors import XferError
from xfer.store import Store

log = logging.getLogger(__name__)

LEASES = "leases"
MODES = ("skip", "wait")
DEFAULT_TTL = 60.0


class RunningElsewhere(Exception):
    """Another live owner holds the job's lease (not a failure: the job is being run)."""

    def __init__(self, job_id: str, owner: str, age: float):
        super().__init__(f"running elsewhere ({owner} holds its lease, renewed {age:.0f} s ago)")
        self.job_id, self.owner, self.age = job_id, owner, age


def lease_key(job_id: str) -> str:
    return f"{LEASES}/{job_id}.json"


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def ttl_seconds() -> float:
    value = os.environ.get("XFER_LEASE_SECONDS", "")
    if not value.strip():
        return DEFAULT_TTL
    try:
        ttl = float(value)
    except ValueError:
        ttl = 0.0
    if not 0 < ttl < float("inf"):
        raise XferError(f"$XFER_LEASE_SECONDS={value!r}: expected a positive number of seconds")
    return ttl


def if_running_mode(default: str) -> str:
    """What to do with a job another live runner holds: $XFER_IF_RUNNING (skip or wait), else `default`."""
    value = os.environ.get("XFER_IF_RUNNING", "").strip().lower() or default
    if value not in MODES:
        raise XferError(f"$XFER_IF_RUNNING={os.environ.get('XFER_IF_RUNNING')!r}: expected skip or wait")
    return value


@dataclass
class Lease:
    """A lease this process holds."""

    store: Store
    job_id: str
    owner: str
    token: str
    ttl: float
    renewals: int = 0
    lost: threading.Event = field(default_factory=threading.Event)
    writing: threading.Lock = field(default_factory=threading.Lock)  # a renewal never lands after the release

    @property
    def key(self) -> str:
        return lease_key(self.job_id)

    def body(self) -> bytes:
        return json.dumps({"owner": self.owner, "token": self.token, "ttl_seconds": self.ttl,
                           "renewals": self.renewals, "process": this_process()}, sort_keys=True).encode()


def this_process() -> dict:
    """What identifies this process on this machine: host name, boot id, PID namespace and PID."""
    def text(path: str) -> str | None:
        try:
            with open(path) as f:
                return f.read().strip()
        except OSError:
            return None

    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = None
    return {"host": socket.gethostname(), "boot": text("/proc/sys/kernel/random/boot_id"), "pid_ns": namespace,
            "pid": os.getpid()}


def holder_is_gone(lease: dict) -> bool:
    """True when the lease was written by a process of this machine that has exited."""
    process, here = lease.get("process"), this_process()
    if not isinstance(process, dict) or not isinstance(process.get("pid"), int) or here["boot"] is None:
        return False
    if any(process.get(k) != here[k] for k in ("host", "boot", "pid_ns")):
        return False
    try:
        os.kill(process["pid"], 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists (perhaps another user's)
        return False
    return False


def read(store: Store, job_id: str) -> tuple[dict, float] | None:
    """The job's lease and its age in seconds, or None when there is none (or it is unreadable)."""
    raw = store._read(lease_key(job_id))
    age = store.age(lease_key(job_id)) if raw is not None else None
    if raw is None or age is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("token"), str):
        return None
    return value, age


def is_live(lease: dict, age: float) -> bool:
    ttl = lease.get("ttl_seconds")
    return age < (ttl if isinstance(ttl, (int, float)) and ttl > 0 else DEFAULT_TTL) and not holder_is_gone(lease)


def _acquire(store: Store, job_id: str, owner: str, ttl: float, wait: bool, poll: float) -> Lease:
    mine = Lease(store, job_id, owner, uuid.uuid4().hex, ttl)
    settle = store.settle_seconds
    while True:
        current = read(store, job_id)
        if current is not None and current[0]["token"] != mine.token and is_live(*current):
            holder = str(current[0].get("owner", "?"))
            if not wait:
                raise RunningElsewhere(job_id, holder, current[1])
            log.debug("%s: waiting for %s, which holds its lease", job_id, holder)
            time.sleep(poll)
            continue
        store.put_bytes(mine.key, mine.body())
        time.sleep(settle)  # a taker that read before our write lands after it, and wins: we look again
        current = read(store, job_id)
        if current is not None and current[0]["token"] == mine.token:
            log.debug("%s: lease taken by %s", job_id, owner)
            return mine


def _heartbeat(held: Lease, stop: threading.Event) -> None:
    last_renewal = time.monotonic()
    while not stop.wait(held.ttl / 4):
        with held.writing:
            if stop.is_set():
                return
            last_renewal = _renew(held, last_renewal)
            if held.lost.is_set():
                return


def _renew(held: Lease, last_renewal: float) -> float:
    """Rewrite the lease unless another runner took it over (then `held.lost` is set); the renewal time."""
    try:
        current = read(held.store, held.job_id)
        if current is not None and current[0]["token"] != held.token:
            held.lost.set()
            log.warning("%s: another runner (%s) took over its lease; this run's output will be committed "
                        "only if it is the first", held.job_id, current[0].get("owner", "?"))
            return last_renewal
        held.renewals += 1
        held.store.put_bytes(held.key, held.body())
        return time.monotonic()
    except Exception as exc:  # noqa: BLE001 - keep beating; the job itself reports store trouble
        log.debug("%s: cannot renew its lease: %s", held.job_id, exc)
        if time.monotonic() - last_renewal > held.ttl:
            held.lost.set()
        return last_renewal


def release(held: Lease) -> None:
    try:
        current = read(held.store, held.job_id)
        if current is not None and current[0]["token"] == held.token:
            held.store._delete_keys([held.key])
    except Exception as exc:  # noqa: BLE001 - an unreleased lease simply expires
        log.debug("%s: cannot release its lease: %s", held.job_id, exc)


@contextmanager
def hold(store: Store, job_id: str, owner: str | None = None, *, wait: bool = False, ttl: float | None = None,
         poll: float | None = None) -> Iterator[Lease]:
    """Hold the job's lease for the block, renewing it; see the module docstring."""
    ttl = ttl or ttl_seconds()
    held = _acquire(store, job_id, owner or default_owner(), ttl, wait, poll or min(2.0, ttl / 4))
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(held, stop), name=f"lease-{job_id}", daemon=True)
    beat.start()
    try:
        yield held
    finally:
        stop.set()
        with held.writing:
            release(held)

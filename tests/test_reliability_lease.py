"""Leases: held while a job runs, renewed by a heartbeat, refused (skip) or waited for (wait) while another
live owner holds them, taken over once a dead owner's lease expires - on the local store and on rclone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from xfer import lease
from xfer.errors import XferError
from xfer.store import open_store

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def local(tmp_path):
    """The local store only: what the store's clock and writes do is the same on S3 (the tests above)."""
    return open_store(str(tmp_path / "store"))


def test_a_held_lease_refuses_a_second_owner_and_is_released(store):
    with lease.hold(store, "job1", "runner-a", ttl=30) as held:
        found, age = lease.read(store, "job1")
        assert found["owner"] == "runner-a" and found["token"] == held.token and age < 30
        with pytest.raises(lease.RunningElsewhere) as err:
            with lease.hold(store, "job1", "runner-b", ttl=30):
                pytest.fail("two owners")
        assert str(err.value).startswith("running elsewhere (runner-a holds its lease, renewed ")
        with lease.hold(store, "job2", "runner-b", ttl=30):  # other jobs are free
            pass
    assert lease.read(store, "job1") is None and store.list("leases") == []
    with lease.hold(store, "job1", "runner-b", ttl=30):  # free again
        pass


def test_wait_mode_waits_for_the_holder_to_finish(local):
    store = local
    released = threading.Event()

    def holder():
        with lease.hold(store, "job", "runner-a", ttl=30):
            ready.set()
            time.sleep(1.0)
        released.set()

    ready = threading.Event()
    thread = threading.Thread(target=holder)
    thread.start()
    ready.wait(10)
    started = time.monotonic()
    with lease.hold(store, "job", "runner-b", wait=True, ttl=30, poll=0.1) as held:
        assert released.is_set() and held.owner == "runner-b"
    assert time.monotonic() - started >= 0.8
    thread.join()


def test_the_heartbeat_keeps_a_short_lease_live(store):
    ttl = 1.0 if store.uri.startswith("file:") else 2.0  # S3 dates count whole seconds
    with lease.hold(store, "job", "runner-a", ttl=ttl) as held:
        for _ in range(3):  # well past one ttl, renewed every ttl/4
            time.sleep(0.8 * ttl)
            with pytest.raises(lease.RunningElsewhere):
                with lease.hold(store, "job", "runner-b", ttl=ttl):
                    pass
        assert held.renewals >= 4 and not held.lost.is_set()


def test_a_stale_lease_is_taken_over(store):
    store.put_bytes("leases/job.json", json.dumps({"owner": "dead-runner", "token": "t" * 32,
                                                   "ttl_seconds": 1.0, "renewals": 0}).encode())
    with pytest.raises(lease.RunningElsewhere, match="dead-runner"):
        with lease.hold(store, "job", "runner-b"):
            pass
    time.sleep(2.1)  # S3's clock counts whole seconds
    with lease.hold(store, "job", "runner-b") as held:
        assert lease.read(store, "job")[0]["token"] == held.token


def test_a_holder_notices_when_another_runner_took_over(local):
    store = local
    with lease.hold(store, "job", "runner-a", ttl=0.8) as held:
        store.put_bytes("leases/job.json", json.dumps({"owner": "runner-b", "token": "b" * 32,
                                                       "ttl_seconds": 30}).encode())
        assert held.lost.wait(3)
    assert lease.read(store, "job")[0]["owner"] == "runner-b"  # not released: it is not ours


HOLDER = """
import sys, time
from xfer import lease
from xfer.store import open_store
with lease.hold(open_store(sys.argv[1]), "job", "process-a", ttl=float(sys.argv[2])):
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.mark.parametrize("same_machine", [True, False], ids=["same-machine", "other-machine"])
def test_a_killed_runner_s_lease_is_taken_over(tmp_path, same_machine):
    """A real process holds the lease and is SIGKILLed. On the same machine its lease is taken over at once
    (its process is gone); a lease from another machine must first expire (ttl)."""
    uri = f"file://{tmp_path / 'store'}"
    ttl = 30.0 if same_machine else 1.0
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, uri, str(ttl)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout.readline().strip() == "held"
        store = open_store(uri)
        time.sleep(1.2)  # alive (past one ttl of the short lease: its heartbeat renews it)
        with pytest.raises(lease.RunningElsewhere, match="process-a"):
            with lease.hold(store, "job", "process-b"):
                pass
        if not same_machine:  # as if written elsewhere
            found = json.loads(store.get_bytes("leases/job.json"))
            found["process"]["host"] = "another-host"
            proc.send_signal(signal.SIGSTOP)  # no more renewals, and none overwrites this one
            store.put_bytes("leases/job.json", json.dumps(found).encode())
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        started = time.monotonic()
        with lease.hold(store, "job", "process-b", wait=True, poll=0.1) as held:
            assert held.owner == "process-b"
        waited = time.monotonic() - started
        assert waited < 0.5 if same_machine else 0.5 < waited < 3
    finally:
        proc.kill()
        proc.wait()


def test_settings_are_validated(monkeypatch):
    monkeypatch.setenv("XFER_IF_RUNNING", "maybe")
    with pytest.raises(XferError, match=r"\$XFER_IF_RUNNING='maybe': expected skip or wait"):
        lease.if_running_mode("skip")
    monkeypatch.setenv("XFER_IF_RUNNING", "WAIT")
    assert lease.if_running_mode("skip") == "wait"
    monkeypatch.setenv("XFER_LEASE_SECONDS", "-3")
    with pytest.raises(XferError, match=r"\$XFER_LEASE_SECONDS='-3'"):
        lease.ttl_seconds()

"""Storage faults: transient S3 failures through a fault-injecting proxy in front of rclone (5xx, throttling,
dropped connections, truncated bodies, stalls, a byte flipped on the way, an outage), an endpoint that accepts
TCP and never answers, credentials in an endpoint URL, and the local store's OS errors."""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest

from faultproxy import FaultProxy
from xfer.errors import StoreError, XferError
from xfer.store import StoreUnavailable, open_store

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def proxy(s3_server, monkeypatch):
    """The rclone server behind a fault proxy; XFER_S3_ENDPOINT_URL points at the proxy, short timeouts."""
    with FaultProxy(s3_server.endpoint, stall_s=20) as fault_proxy:
        monkeypatch.setenv("XFER_S3_ENDPOINT_URL", fault_proxy.endpoint)
        monkeypatch.setenv("XFER_S3_CONNECT_TIMEOUT", "1")
        monkeypatch.setenv("XFER_S3_READ_TIMEOUT", "1")
        monkeypatch.setenv("XFER_S3_RETRY_SECONDS", "20")
        monkeypatch.setenv("XFER_S3_COMMIT_SETTLE_SECONDS", "0.05")
        yield fault_proxy


@pytest.fixture
def store(proxy, s3_server):
    return open_store(f"s3://{s3_server.bucket}/f-{uuid.uuid4().hex[:10]}")


def write(folder: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    return folder


def faults_seen(proxy, action: str) -> int:
    return sum(1 for _, _, what in proxy.log if what == action)


@pytest.mark.parametrize("fault", [("status", 503, "SlowDown"), ("status", 500, "InternalError"),
                                   ("status", 429, "TooManyRequests"), "drop"],
                         ids=["503-slowdown", "500", "429", "dropped"])
def test_transient_request_failures_are_retried(store, proxy, fault):
    store.put_bytes("k", b"value")
    proxy.inject(fault, times=3, method="GET")
    proxy.inject(fault, times=3, method="PUT")
    assert store.get_bytes("k") == b"value"
    store.put_bytes("k2", b"second")
    assert store.get_bytes("k2") == b"second"
    assert proxy.pending() == 0 and faults_seen(proxy, str(fault)) == 6


def test_a_truncated_body_is_read_again(store, proxy, tmp_path):
    """botocore checks the length but does not retry a body cut short: the store's own loop does."""
    data = os.urandom(300_000)
    store.put_bytes("blob", data)
    proxy.inject("truncate", times=2, method="GET", path="/blob")
    assert store.get_bytes("blob") == data
    proxy.inject("truncate", times=2, method="GET", path="/blob")
    store.download_file("blob", tmp_path / "blob")
    assert (tmp_path / "blob").read_bytes() == data
    assert faults_seen(proxy, "truncate") == 4


def test_a_stalled_answer_times_out_and_is_retried(store, proxy):
    store.put_bytes("k", b"value")
    proxy.inject("stall", times=1, method="GET")
    started = time.monotonic()
    assert store.get_bytes("k") == b"value"
    assert 0.9 < time.monotonic() - started < 8  # XFER_S3_READ_TIMEOUT=1, not minutes


def test_a_byte_flipped_on_the_way_is_never_committed(store, proxy, tmp_path):
    """Content-MD5 on small objects and the after-upload check on files: the corrupted PUT is refused or
    caught, the upload repeated, and the committed output verifies."""
    files = {"model.safetensors": os.urandom(200_000), "config.json": b'{"a": 1}'}
    proxy.inject("flip", times=1, method="PUT", path="model.safetensors")
    proxy.inject("flip", times=1, method="PUT", path="manifest.json")
    manifest = store.commit("out", write(tmp_path / "src", files))
    assert faults_seen(proxy, "flip") == 2
    assert store.fetch("out", tmp_path / "dst") == manifest
    for rel, data in files.items():
        assert (tmp_path / "dst" / rel).read_bytes() == data
    assert manifest["files"]["model.safetensors"]["sha256"] == hashlib.sha256(files["model.safetensors"]).hexdigest()


def test_an_outage_shorter_than_the_retry_budget_is_ridden_out(store, proxy, tmp_path):
    store.commit("before", write(tmp_path / "a", {"x": b"x"}))
    proxy.outage(3)
    started = time.monotonic()
    assert store.is_committed("before")
    manifest = store.commit("during", write(tmp_path / "b", {"y": b"y"}))
    assert time.monotonic() - started >= 2.5
    assert store.fetch("during", tmp_path / "dst") == manifest
    assert faults_seen(proxy, "outage") >= 2


def test_an_outage_longer_than_the_retry_budget_is_a_temporary_failure(store, proxy, monkeypatch):
    proxy.outage(30)
    slow = type(store)(store.bucket, store.prefix, retry_seconds=2)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as err:
        slow.is_committed("out")
    elapsed = time.monotonic() - started
    assert 1.5 < elapsed < 8
    message = str(err.value)
    assert "\n" not in message and "gave up after" in message and f"{store.uri}/out/_COMPLETE" in message
    assert not isinstance(err.value, XferError)  # not a user mistake: exit 75, not 2


def test_random_faults_during_commit_and_fetch(store, proxy, tmp_path, monkeypatch):
    """One fault of each kind on the way, at the first requests they match: the output still arrives whole."""
    monkeypatch.setenv("XFER_S3_MULTIPART_THRESHOLD_MB", "5")
    monkeypatch.setenv("XFER_S3_MULTIPART_CHUNK_MB", "5")
    store = open_store(store.uri)
    files = {"big.bin": os.urandom(11 * 1024 * 1024), "small.txt": b"small"}
    for fault in ("drop", ("status", 503, "SlowDown"), "flip", ("status", 500, "InternalError")):
        proxy.inject(fault, method="PUT")
    for fault in ("truncate", "drop", "stall", "truncate"):
        proxy.inject(fault, method="GET")
    manifest = store.commit("out", write(tmp_path / "src", files))
    store.fetch("out", tmp_path / "dst")
    assert proxy.pending() == 0
    for rel, data in files.items():
        assert (tmp_path / "dst" / rel).read_bytes() == data
    assert set(manifest["files"]) == set(files)


# --- endpoints that never answer, credentials in URLs ---------------------------------------------


@pytest.fixture
def silent_server():
    """Accepts TCP connections on 127.0.0.1 and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held, stop = [], threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except (socket.timeout, OSError):
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for sock in held:
        sock.close()
    listener.close()


def test_an_endpoint_that_never_answers_fails_within_the_configured_timeouts(silent_server, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    monkeypatch.setenv("XFER_S3_ENDPOINT_URL", f"http://{silent_server}")
    monkeypatch.setenv("XFER_S3_CONNECT_TIMEOUT", "1")
    monkeypatch.setenv("XFER_S3_READ_TIMEOUT", "1")
    monkeypatch.setenv("XFER_S3_RETRY_SECONDS", "2")
    monkeypatch.setenv("XFER_S3_MAX_ATTEMPTS", "2")
    store = open_store("s3://bucket/p")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match=f"S3 endpoint http://{silent_server} did not answer in time"):
        store.get_bytes("k")
    assert time.monotonic() - started < 2 + 2 * 1 + 3  # budget + one attempt's botocore tries + slack


def test_credentials_in_the_endpoint_url_never_appear(silent_server, monkeypatch, tmp_path, capsys):
    """An endpoint URL with user:password in it is refused (credentials belong in AWS_* variables or a
    profile), by the store and by the CLI, in one line that never shows them; messages from the S3 client
    about the endpoint hide them too."""
    port = silent_server.rsplit(":", 1)[1]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    for endpoint in (f"http://admin:hunter2secret@127.0.0.1:{port}", "http://admin:hunter2secret@127.0.0.1:notaport",
                     "http://adm@n:hunt@r2secret@127.0.0.1:9000"):
        monkeypatch.setenv("XFER_S3_ENDPOINT_URL", endpoint)
        with pytest.raises(XferError) as err:
            open_store("s3://bucket")
        assert "hunter2secret" not in str(err.value) and "admin" not in str(err.value), err.value
        assert "r2secret" not in str(err.value) and "$XFER_S3_ENDPOINT_URL='http://***@127.0.0.1:" in str(err.value)
    from xfer.s3store import redact

    assert redact("Could not connect to http://admin:hunter2secret@127.0.0.1:9000/b") == \
        "Could not connect to http://***@127.0.0.1:9000/b"
    # through the CLI: one line on stderr, exit 2 (a user's mistake, not a temporary failure), no secret
    from xfer import cli
    from xfer.config import load as load_config
    from xfer.plan import build_plan

    config = ROOT / "configs" / "demo.yaml"
    job_id = build_plan(load_config(str(config))[0]).jobs[0].id
    monkeypatch.setenv("XFER_S3_ENDPOINT_URL", f"http://admin:hunter2secret@127.0.0.1:{port}")
    capsys.readouterr()
    code = cli.main(["job", "run", job_id, "--config", str(config), "--store", "s3://bucket/x",
                     "--work", str(tmp_path / "w")])
    out = capsys.readouterr()
    assert code == 2, out.err
    assert "hunter2secret" not in out.err + out.out
    (line,) = [line for line in out.err.splitlines() if line.strip()]
    assert line.startswith("xfer: error: $XFER_S3_ENDPOINT_URL='http://***@127.0.0.1:")
    assert "contains credentials" in line


# --- the local store: no retries, one-line errors --------------------------------------------------


def test_local_disk_full_and_permission_errors_are_one_line(tmp_path, monkeypatch):
    store = open_store(str(tmp_path / "store"))
    src = write(tmp_path / "src", {"a.bin": b"a" * 1000, "b.bin": b"b"})
    import shutil

    real_copy = shutil.copyfile

    def full(src_path, dst_path, *args, **kwargs):
        if str(dst_path).endswith("b.bin"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_copy(src_path, dst_path, *args, **kwargs)

    monkeypatch.setattr("xfer.store.shutil.copyfile", full)
    with pytest.raises(StoreError) as err:
        store.commit("out", src)
    assert str(err.value) == f"cannot commit {store.uri}/out: No space left on device"
    assert not store.is_committed("out") and store.list("") == [] and not store.scratch()  # nothing half-written
    monkeypatch.undo()

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("xfer.store.os.replace", denied)
    with pytest.raises(StoreError) as err:
        store.put_bytes("k", b"v")
    assert str(err.value) == f"cannot write {store.uri}/k: Permission denied"
    monkeypatch.undo()
    assert store.commit("out", src)["files"].keys() == {"a.bin", "b.bin"}  # and it works once the disk has room

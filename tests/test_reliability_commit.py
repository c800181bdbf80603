"""Exclusive commits: two real processes racing for the same prefixes, on the local store and on rclone's S3
server (which ignores If-None-Match); the conditional-write path on a server that honours it; late and
stale writers; what a loser leaves behind."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import threading
import time
import uuid
from pathlib import Path

import pytest

from xfer.store import LocalStore, open_store

ROUNDS = 50


def _content(writer: int, round_: int) -> dict[str, bytes]:
    return {"data.bin": f"writer {writer} round {round_}\n".encode() * (50 + writer),
            "sub/other.txt": f"the other file of writer {writer}".encode()}


def _writer(writer: int, uri: str, rounds: int, barrier, results, work: str) -> None:
    """One racing process: for each round, wait for the other, then commit its own bytes to round-<n>."""
    store = open_store(uri)
    for round_ in range(rounds):
        folder = Path(work) / f"w{writer}" / f"r{round_}"
        for rel, data in _content(writer, round_).items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(data)
        barrier.wait(timeout=60)
        manifest = store.commit(f"race/round-{round_}", folder, meta={"writer": writer})
        results.put((writer, round_, manifest["meta"]["writer"], manifest["files"]["data.bin"]["sha256"]))
    results.put((writer, None, None, None))


def race(uri: str, tmp_path: Path, rounds: int = ROUNDS) -> dict[int, dict[int, tuple[int, str]]]:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(w, uri, rounds, barrier, results, str(tmp_path))) for w in (0, 1)]
    for proc in procs:
        proc.start()
    seen: dict[int, dict[int, tuple[int, str]]] = {0: {}, 1: {}}
    finished = 0
    try:
        while finished < 2:
            writer, round_, winner, sha = results.get(timeout=120)
            if round_ is None:
                finished += 1
            else:
                seen[writer][round_] = (winner, sha)
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    assert [proc.exitcode for proc in procs] == [0, 0]
    return seen


def check_rounds(store, seen, tmp_path: Path, rounds: int = ROUNDS) -> list[int]:
    winners = []
    for round_ in range(rounds):
        (w0, sha0), (w1, sha1) = seen[0][round_], seen[1][round_]
        assert (w0, sha0) == (w1, sha1), f"round {round_}: the writers disagree on the winner"
        expected = _content(w0, round_)
        assert sha0 == hashlib.sha256(expected["data.bin"]).hexdigest()
        prefix = f"race/round-{round_}"
        assert store.is_committed(prefix)
        dst = tmp_path / "check" / str(round_)
        manifest = store.fetch(prefix, dst)  # verified against the manifest
        assert manifest["meta"] == {"writer": w0}
        assert {p.relative_to(dst).as_posix(): p.read_bytes() for p in dst.rglob("*") if p.is_file()} == expected
        winners.append(w0)
    return winners


def test_two_processes_race_for_fifty_prefixes_on_the_local_store(tmp_path):
    uri = f"file://{tmp_path / 'store'}"
    seen = race(uri, tmp_path)
    store = open_store(uri)
    winners = check_rounds(store, seen, tmp_path)
    assert set(store.list("race")) == {f"race/round-{r}/{name}" for r in range(ROUNDS)
                                       for name in ("_COMPLETE", "manifest.json", "data.bin", "sub/other.txt")}
    assert not store.scratch()  # losers' staged folders are gone
    print(f"local: writer 0 won {winners.count(0)} of {ROUNDS} rounds")


def test_two_processes_race_for_fifty_prefixes_on_rclone_s3(s3_server, tmp_path, monkeypatch):
    """rclone ignores If-None-Match (checked here: the store probes it), so this is the candidate protocol."""
    monkeypatch.setenv("XFER_S3_COMMIT_SETTLE_SECONDS", "0.2")
    uri = f"s3://{s3_server.bucket}/race-{uuid.uuid4().hex[:8]}"
    store = open_store(uri)
    assert store._honours_if_none_match() is False
    seen = race(uri, tmp_path)
    winners = check_rounds(store, seen, tmp_path)
    for round_ in range(ROUNDS):  # the loser withdrew its candidate and deleted its attempt
        prefix = f"race/round-{round_}"
        attempt = json.loads(store.get_bytes(f"{prefix}/_COMPLETE"))["attempt"]
        assert {k.split("/")[3] for k in store.list(f"{prefix}/_attempts")} == {attempt}
        assert store.list(f"{prefix}/_candidates") == [f"{prefix}/_candidates/{attempt}"]
    print(f"s3: writer 0 won {winners.count(0)} of {ROUNDS} rounds")


# --- the S3 protocol in detail (threads in one process are enough to drive each path) -----------------


def write(folder: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    return folder


@pytest.fixture
def s3(s3_server):
    from xfer.s3store import S3Store

    return lambda prefix, **kwargs: S3Store(s3_server.bucket, prefix, **kwargs)


class HonouringServer:
    """Makes rclone honour If-None-Match for a client, as AWS S3 does (atomically: one lock for all clients)."""

    lock = threading.Lock()

    def __init__(self, store):
        from botocore.exceptions import ClientError

        self.conditional = 0
        real_put = store._client.put_object

        def put_object(**kwargs):
            if kwargs.pop("IfNoneMatch", None) != "*":
                return real_put(**kwargs)
            with self.lock:
                self.conditional += 1
                try:
                    store._client.head_object(Bucket=kwargs["Bucket"], Key=kwargs["Key"])
                except ClientError:
                    return real_put(**kwargs)
                raise ClientError({"Error": {"Code": "PreconditionFailed", "Message": "exists"},
                                   "ResponseMetadata": {"HTTPStatusCode": 412}}, "PutObject")

        store._client.put_object = put_object


def test_a_server_that_honours_if_none_match_picks_the_winner(s3, tmp_path):
    prefix = f"cond-{uuid.uuid4().hex[:8]}"
    stores = [s3(prefix, settle_seconds=5.0) for _ in range(2)]  # a settle this long would show in the time
    servers = [HonouringServer(store) for store in stores]
    assert all(store._honours_if_none_match() for store in stores)
    results, start = {}, threading.Barrier(2)

    def commit(i):
        start.wait()
        results[i] = stores[i].commit("out", write(tmp_path / str(i), {"x.txt": f"writer {i}".encode()}))

    started = time.monotonic()
    threads = [threading.Thread(target=commit, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert time.monotonic() - started < 4  # no candidates, no settle interval
    assert results[0] == results[1]
    assert sum(server.conditional for server in servers) == 2 + 2  # one probe (twice) per process, one create each
    assert not stores[0].list("out/_candidates")
    assert len({k.split("/")[2] for k in stores[0].list("out/_attempts")}) == 1  # the loser cleaned up


def test_a_server_that_refuses_if_none_match_falls_back_to_candidates(s3, tmp_path):
    from botocore.exceptions import ClientError

    store = s3(f"refuse-{uuid.uuid4().hex[:8]}", settle_seconds=0.05)
    real_put, conditional = store._client.put_object, []

    def put_object(**kwargs):
        if "IfNoneMatch" in kwargs:
            conditional.append(kwargs["Key"])
            raise ClientError({"Error": {"Code": "NotImplemented", "Message": "not here"},
                               "ResponseMetadata": {"HTTPStatusCode": 501}}, "PutObject")
        return real_put(**kwargs)

    store._client.put_object = put_object
    src = write(tmp_path / "src", {"a.txt": b"a"})
    store.commit("one", src)
    store.commit("two", src)
    assert store.is_committed("one") and store.is_committed("two")
    assert len(conditional) == 1  # probed once, then remembered
    assert store.list("one/_candidates") and store.list("two/_candidates")


def test_a_late_writer_defers_to_a_live_candidate_and_a_stale_one_is_taken_over(s3, tmp_path):
    store = s3(f"late-{uuid.uuid4().hex[:8]}", settle_seconds=0.1, conditional_writes="off")
    other = "f" * 32
    # a live candidate of another writer, which then publishes: the late writer returns its output

    def publish_theirs():
        manifest = {"files": {"x.txt": {"size": 6, "sha256": hashlib.sha256(b"theirs").hexdigest()}}, "meta": {}}
        raw = json.dumps(manifest).encode()
        store.put_bytes(f"out/_attempts/{other}/x.txt", b"theirs")
        store.put_bytes(f"out/_attempts/{other}/manifest.json", raw)
        store.put_bytes("out/_COMPLETE", json.dumps({"attempt": other,
                                                     "manifest_sha256": hashlib.sha256(raw).hexdigest()}).encode())

    store.put_bytes(f"out/_candidates/{other}", b"")
    timer = threading.Timer(0.5, publish_theirs)
    timer.start()
    manifest = store.commit("out", write(tmp_path / "mine", {"x.txt": b"mine"}))
    timer.join()
    assert manifest["files"]["x.txt"]["sha256"] == hashlib.sha256(b"theirs").hexdigest()
    assert {k.split("/")[2] for k in store.list("out/_attempts")} == {other}  # the late writer cleaned up
    assert store.list("out/_candidates") == [f"out/_candidates/{other}"]
    # a candidate whose writer died: stale after 15 x settle = 1.5 s, then taken over
    store.put_bytes(f"dead/_candidates/{other}", b"")
    started = time.monotonic()
    manifest = store.commit("dead", write(tmp_path / "mine2", {"x.txt": b"mine"}))
    assert 1.3 < time.monotonic() - started < 10
    assert manifest["files"]["x.txt"]["sha256"] == hashlib.sha256(b"mine").hexdigest()
    assert store.list("dead/_candidates") == [f"dead/_candidates/{json.loads(store.get_bytes('dead/_COMPLETE'))['attempt']}"]


def test_an_s3_output_committed_before_attempts_existed_stays_readable(s3, tmp_path):
    """The old layout (files, manifest and a sha256 marker directly under the prefix) is still committed."""
    store = s3(f"old-{uuid.uuid4().hex[:8]}")
    manifest = {"files": {"a.txt": {"size": 1, "sha256": hashlib.sha256(b"a").hexdigest()}}, "meta": {},
                "committed_at": "2026-01-01T00:00:00+00:00"}
    raw = json.dumps(manifest).encode()
    store.put_bytes("out/a.txt", b"a")
    store.put_bytes("out/manifest.json", raw)
    store.put_bytes("out/_COMPLETE", hashlib.sha256(raw).hexdigest().encode())
    assert store.is_committed("out") and store.read_committed("out", "a.txt") == b"a"
    assert store.commit("out", write(tmp_path / "new", {"b.txt": b"b"})) == manifest


def test_local_rename_loser_reads_the_winner(tmp_path):
    """The local atomic step in isolation: a commit whose rename finds the prefix taken returns the winner."""
    store = LocalStore(tmp_path / "store")
    first = store.commit("out", write(tmp_path / "a", {"x.txt": b"a"}))
    second = store._publish("out", {"x.txt": write(tmp_path / "b", {"x.txt": b"b"}) / "x.txt"},
                            json.dumps({"files": {}, "meta": {}}).encode())
    assert second.manifest == first and (tmp_path / "store" / "out" / "x.txt").read_bytes() == b"a"
    assert not store.scratch()

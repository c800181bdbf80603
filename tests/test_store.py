"""The store: raw keys, the commit protocol and URI parsing, on a local folder and on a real S3 server (rclone)."""

import hashlib
import json
import os
import random
import re
import socket
import time
from pathlib import Path

import pytest

from xfer.errors import StoreError, XferError
from xfer.store import CorruptOutput, LocalStore, S3Store, StoreUnavailable, open_store

MiB = 1024 * 1024
TREE = {
    "config.json": b'{"hidden_size": 8}\n',
    "weights/model.safetensors": bytes(range(256)) * 40,
    "weights/shards/part-0.bin": b"\x00\x01" * 999,
    "empty.txt": b"",
}


def committed_keys(store, prefix: str, rels) -> list[str]:
    """The keys a single writer's commit of `rels` leaves: the local layout, or S3's attempt layout."""
    if isinstance(store, LocalStore):
        return sorted([f"{prefix}/{rel}" for rel in rels] + [f"{prefix}/_COMPLETE", f"{prefix}/manifest.json"])
    attempt = json.loads(store.get_bytes(f"{prefix}/_COMPLETE"))["attempt"]
    root = f"{prefix}/_attempts/{attempt}"
    return sorted([f"{root}/{rel}" for rel in rels] + [f"{root}/manifest.json", f"{prefix}/_COMPLETE",
                                                       f"{prefix}/_candidates/{attempt}"])


def root_of(store, prefix: str) -> str:
    """Where the committed files of `prefix` lie."""
    if isinstance(store, LocalStore):
        return prefix
    return f"{prefix}/_attempts/{json.loads(store.get_bytes(f'{prefix}/_COMPLETE'))['attempt']}"


def write_tree(folder: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    return folder


def read_tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message
    return message


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- raw keys --------------------------------------------------------------------------------------


def test_put_get_exists_and_missing_key(store):
    store.put_bytes("a/b/c.txt", b"hello")
    assert store.get_bytes("a/b/c.txt") == b"hello"
    assert store.exists("a/b/c.txt") and not store.exists("a/b/nope.txt")
    store.put_bytes("a/b/c.txt", b"again")  # overwrite
    assert store.get_bytes("a/b/c.txt") == b"again"
    with pytest.raises(StoreError) as err:
        store.get_bytes("a/b/nope.txt")
    assert one_line(err) == f"not found in store: {store.uri}/a/b/nope.txt"


@pytest.mark.parametrize("key", ["/abs", "a//b", "a/../b", "../up", "a/./b", "trailing/", ""])
def test_non_canonical_keys_are_refused(store, key):
    with pytest.raises(StoreError, match="invalid store key"):
        store.put_bytes(key, b"x")


def test_list_is_recursive_sorted_and_scoped_to_the_folder(store, tmp_path):
    for key in ["c", "a/x", "a/b/y", "ab/z", "a/b/d/w"]:
        store.put_bytes(key, key.encode())
    assert store.list("a") == ["a/b/d/w", "a/b/y", "a/x"]
    assert store.list("a/") == store.list("a")  # "ab/z" is not in the folder "a"
    assert store.list("") == ["a/b/d/w", "a/b/y", "a/x", "ab/z", "c"]
    assert store.list("missing") == []
    store.delete_prefix("a/b")
    assert store.list("") == ["a/x", "ab/z", "c"]
    store.delete_prefix("a")
    assert store.list("") == ["ab/z", "c"]
    with pytest.raises(StoreError):
        store.delete_prefix("")  # never the whole store


def test_upload_and_download_file(store, tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(3000))
    store.upload_file(src, "files/src.bin")
    dest = tmp_path / "out" / "deep" / "copy.bin"
    store.download_file("files/src.bin", dest)
    assert dest.read_bytes() == src.read_bytes()
    with pytest.raises(StoreError, match="not found in store: .*files/none.bin"):
        store.download_file("files/none.bin", tmp_path / "out" / "none.bin")
    assert sorted(p.name for p in (tmp_path / "out" / "deep").iterdir()) == ["copy.bin"]  # no temp files left
    assert not (tmp_path / "out" / "none.bin").exists()


def test_multipart_upload_round_trips(store, tmp_path, monkeypatch):
    monkeypatch.setenv("XFER_S3_MULTIPART_THRESHOLD_MB", "5")
    monkeypatch.setenv("XFER_S3_MULTIPART_CHUNK_MB", "5")
    store = open_store(store.uri)  # re-opened: picks up the environment
    etags, ranged_gets = [], []
    if isinstance(store, S3Store):
        assert store._transfer.multipart_threshold == 5 * MiB
        events = store._client.meta.events
        events.register("after-call.s3.CompleteMultipartUpload", lambda parsed, **_: etags.append(parsed["ETag"]))
        events.register("before-parameter-build.s3.GetObject", lambda params, **_: ranged_gets.append(params.get("Range")))
    big = tmp_path / "big.bin"
    big.write_bytes(random.Random(7).randbytes(12 * MiB + 12345))
    store.upload_file(big, "blobs/big.bin")
    store.download_file("blobs/big.bin", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == big.read_bytes()
    if isinstance(store, S3Store):
        assert len(etags) == 1 and re.fullmatch(r'"?[0-9a-f]{32}-3"?', etags[0]), etags  # 3 parts of <= 5 MiB
        assert len([r for r in ranged_gets if r]) == 3  # downloaded in ranges too


# --- the commit protocol ---------------------------------------------------------------------------


def test_commit_fetch_round_trip_with_nested_files(store, tmp_path):
    src = write_tree(tmp_path / "src", TREE)
    manifest = store.commit("jobs/j1/output", src, meta={"job": "j1", "step": 3})
    assert manifest["files"] == {rel: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                                 for rel, data in TREE.items()}
    assert manifest["meta"] == {"job": "j1", "step": 3}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", manifest["committed_at"])
    assert store.is_committed("jobs/j1/output") and store.manifest("jobs/j1/output") == manifest
    assert store.list("jobs/j1/output") == committed_keys(store, "jobs/j1/output", TREE)
    root = root_of(store, "jobs/j1/output")
    raw = store.get_bytes(f"{root}/manifest.json")
    assert json.loads(raw) == manifest
    marker = store.get_bytes("jobs/j1/output/_COMPLETE").decode()
    if isinstance(store, LocalStore):
        assert marker == hashlib.sha256(raw).hexdigest()
    else:
        assert json.loads(marker) == {"attempt": root.rsplit("/", 1)[1], "manifest_sha256": hashlib.sha256(raw).hexdigest()}

    assert store.fetch("jobs/j1/output/", tmp_path / "dst") == manifest
    assert read_tree(tmp_path / "dst") == TREE
    assert store.read_committed("jobs/j1/output", "weights/shards/part-0.bin") == TREE["weights/shards/part-0.bin"]
    with pytest.raises(StoreError, match="no file 'nope'"):
        store.read_committed("jobs/j1/output", "nope")


def test_a_crash_before_publishing_is_never_seen_and_the_retry_commits(store, tmp_path, monkeypatch):
    """Killed after its files were staged, before the atomic step: nothing is committed, the retry commits
    its own files only (local: the staged folder is hidden and removed; S3: the attempt is never read)."""
    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed before publishing")

    if isinstance(store, LocalStore):
        monkeypatch.setattr("xfer.store.os.rename", crash)
    else:
        monkeypatch.setattr(store, "_publish_by_candidates", crash)
    with pytest.raises(KeyboardInterrupt):
        store.commit("out", write_tree(tmp_path / "first", {**TREE, "stale.txt": b"from the first attempt"}))
    if isinstance(store, LocalStore):
        assert store.list("") == [] and not list((tmp_path / "store").iterdir())  # nothing left, nothing shown
    else:
        assert any(k.endswith("/stale.txt") for k in store.list("out"))  # the attempt's files did land
    assert not store.is_committed("out")
    with pytest.raises(StoreError, match="not committed"):
        store.fetch("out", tmp_path / "dst")
    with pytest.raises(StoreError, match="not committed"):
        store.manifest("out")
    with pytest.raises(StoreError, match="not committed"):
        store.read_committed("out", "config.json")
    assert not (tmp_path / "dst").exists()

    monkeypatch.undo()
    second = {**TREE, "config.json": b'{"hidden_size": 16}\n'}
    manifest = store.commit("out", write_tree(tmp_path / "second", second))
    assert set(manifest["files"]) == set(second)
    store.fetch("out", tmp_path / "dst")
    assert read_tree(tmp_path / "dst") == second  # what only the crashed attempt wrote is not part of it


def test_marker_must_match_the_manifest(store, tmp_path):
    store.commit("out", write_tree(tmp_path / "src", TREE))
    marker = store.get_bytes("out/_COMPLETE")
    store.put_bytes("out/_COMPLETE", b"0" * 64)
    assert not store.is_committed("out")
    store.put_bytes("out/_COMPLETE", marker)
    assert store.is_committed("out")
    manifest_key = f"{root_of(store, 'out')}/manifest.json"
    store.put_bytes(manifest_key, store.get_bytes(manifest_key).replace(b'"size"', b'"size" '))
    assert not store.is_committed("out")


def test_a_broken_marker_is_quarantined_by_the_next_commit(store, tmp_path, caplog):
    """A marker that names no valid manifest is moved aside (never deleted) and the commit goes on (S3: once
    it is older than the stale interval, in case it is being written)."""
    store.commit("out", write_tree(tmp_path / "src", TREE))
    manifest_key = f"{root_of(store, 'out')}/manifest.json"
    store.put_bytes(manifest_key, store.get_bytes(manifest_key).replace(b'"size"', b'"size" '))
    assert not store.is_committed("out")
    with caplog.at_level("WARNING", logger="xfer.store"):
        manifest = store.commit("out", write_tree(tmp_path / "new", {"new.txt": b"recomputed"}))
    assert set(manifest["files"]) == {"new.txt"} and store.is_committed("out")
    (line,) = [r.getMessage() for r in caplog.records if "quarantined" in r.getMessage()]
    assert f"quarantined {store.uri}/out: its _COMPLETE marker names no matching manifest" in line
    moved = [k for k in store.list("quarantine/out") if k.endswith("/weights/model.safetensors")]
    assert len(moved) == 1 and store.get_bytes(moved[0]) == TREE["weights/model.safetensors"]


@pytest.mark.parametrize("bad", [b"X" * len(TREE["weights/model.safetensors"]), b"short", None],
                         ids=["same-size", "resized", "missing"])
def test_a_corrupted_committed_file_is_quarantined_not_served(store, tmp_path, bad, caplog):
    store.commit("out", write_tree(tmp_path / "src", TREE))
    key = f"{root_of(store, 'out')}/weights/model.safetensors"
    if bad is None:
        store._delete_keys([key])
    else:
        store.put_bytes(key, bad)
    assert store.is_committed("out")  # the marker only covers the manifest: fetch checks the files
    dst = tmp_path / "dst"
    with caplog.at_level("WARNING", logger="xfer.store"), pytest.raises(CorruptOutput) as err:
        store.fetch("out", dst)
    message = one_line(err)
    assert key in message and {b"short": "size", None: "missing"}.get(bad, "sha256") in message
    assert "quarantined" in message and err.value.prefix == "out"
    assert err.value.moved_to.startswith("quarantine/out/")
    assert not store.is_committed("out")  # its job will run again
    assert not (dst / "weights" / "model.safetensors").exists()
    assert not [p for p in dst.rglob("*") if p.is_file() and p.name.startswith(".")]  # no temp files left
    assert store.list("out") == []
    kept = {k[len(err.value.moved_to) + 1:] for k in store.list(err.value.moved_to)}
    assert any(k.endswith("config.json") for k in kept) and any(k.endswith("_COMPLETE") for k in kept)
    assert len([r for r in caplog.records if "quarantined" in r.getMessage()]) == 1


def test_read_committed_quarantines_a_corrupted_file(store, tmp_path):
    store.commit("out", write_tree(tmp_path / "src", TREE))
    store.put_bytes(f"{root_of(store, 'out')}/config.json", b'{"hidden_size": 9}\n')
    with pytest.raises(CorruptOutput, match="corrupt file .*out/.*config.json: sha256"):
        store.read_committed("out", "config.json")
    assert not store.is_committed("out") and store.list("quarantine/out")
    store.commit("out", write_tree(tmp_path / "again", TREE))  # recomputed: committed afresh
    assert store.read_committed("out", "config.json") == TREE["config.json"]


def test_quarantine_is_the_primitive_for_callers(store, tmp_path):
    """`quarantine(prefix, reason)` (e.g. a checkpoint that fails to load) moves the output aside."""
    store.commit("ckpt/step-1", write_tree(tmp_path / "src", TREE))
    moved = store.quarantine("ckpt/step-1", "cannot load optimizer.safetensors")
    assert moved.startswith("quarantine/ckpt/step-1/") and not store.is_committed("ckpt/step-1")
    assert store.quarantine("ckpt/step-1", "again") is None  # nothing left to move
    with pytest.raises(StoreError, match="in quarantine already"):
        store.quarantine(moved, "twice")


def test_commit_is_idempotent(store, tmp_path):
    first = store.commit("out", write_tree(tmp_path / "a", TREE), meta={"attempt": 1})
    again = store.commit("out", write_tree(tmp_path / "b", {"other.txt": b"different"}), meta={"attempt": 2})
    assert again == first
    assert store.fetch("out", tmp_path / "dst") == first
    assert read_tree(tmp_path / "dst") == TREE


def test_commit_refuses_reserved_names_and_missing_folders(store, tmp_path):
    with pytest.raises(StoreError, match="reserves"):
        store.commit("out", write_tree(tmp_path / "src", {"manifest.json": b"{}"}))
    with pytest.raises(StoreError, match="local folder not found"):
        store.commit("out", tmp_path / "missing")
    with pytest.raises(StoreError, match="not the store root"):
        store.commit("", tmp_path / "src")
    assert store.list("") == []


def test_uncommit_deletes_the_marker_first(store, tmp_path, monkeypatch):
    src = write_tree(tmp_path / "src", TREE)
    store.commit("ckpt/step-1", src)
    store.commit("ckpt/step-2", src)
    real_delete, calls = store._delete_keys, []

    def fail_after_the_marker(keys):
        calls.append(list(keys))
        if len(calls) > 1:
            raise StoreError("simulated failure after the marker went")
        real_delete(keys)

    monkeypatch.setattr(store, "_delete_keys", fail_after_the_marker)
    if isinstance(store, LocalStore):
        monkeypatch.setattr(store, "delete_prefix", lambda prefix: fail_after_the_marker([prefix]))
    with pytest.raises(StoreError, match="simulated"):
        store.uncommit("ckpt/step-1")
    assert calls[0] == ["ckpt/step-1/_COMPLETE"]
    assert not store.exists("ckpt/step-1/_COMPLETE") and store.list("ckpt/step-1")
    assert not store.is_committed("ckpt/step-1")
    monkeypatch.undo()
    store.uncommit("ckpt/step-1")
    assert store.list("ckpt/step-1") == []
    assert store.is_committed("ckpt/step-2")
    assert store.fetch("ckpt/step-2", tmp_path / "dst")["files"].keys() == TREE.keys()


def test_commit_refuses_reserved_prefixes(store, tmp_path):
    src = write_tree(tmp_path / "src", TREE)
    for prefix in ("out/_attempts/x", "_candidates", "a/_COMPLETE/b"):
        with pytest.raises(StoreError, match="names the store reserves"):
            store.commit(prefix, src)


# --- URIs ------------------------------------------------------------------------------------------


def test_open_store_file_uris_and_plain_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    absolute = open_store(f"file://{tmp_path}/abs")
    assert isinstance(absolute, LocalStore) and absolute.root == tmp_path / "abs"
    assert absolute.uri == f"file://{tmp_path}/abs"
    relative = open_store("file://rel/dir")
    assert relative.root == tmp_path / "rel" / "dir" and relative.uri == f"file://{tmp_path}/rel/dir"
    plain = open_store("plain/dir")
    assert isinstance(plain, LocalStore) and plain.root == tmp_path / "plain" / "dir"
    assert open_store(plain.uri).root == plain.root
    plain.put_bytes("k", b"v")
    assert (tmp_path / "plain" / "dir" / "k").read_bytes() == b"v"
    assert not [p for p in (tmp_path / "plain" / "dir").iterdir() if p.name != "k"]  # no temp files left


def test_open_store_s3_uris():
    bucket = open_store("s3://my-bucket")
    assert isinstance(bucket, S3Store) and (bucket.bucket, bucket.prefix, bucket.uri) == ("my-bucket", "", "s3://my-bucket")
    nested = open_store("s3://my-bucket/some/prefix/")
    assert (nested.bucket, nested.prefix, nested.uri) == ("my-bucket", "some/prefix", "s3://my-bucket/some/prefix")
    assert open_store(nested.uri).uri == nested.uri
    assert nested._key("jobs/x/manifest.json") == "some/prefix/jobs/x/manifest.json"


@pytest.mark.parametrize("uri, message", [
    ("gs://bucket/x", "store URI 'gs://bucket/x': unsupported scheme 'gs' (use file:// or s3://)"),
    ("s3://", "store URI 's3://': missing the bucket name"),
    ("s3://bucket/a/../b", "store URI 's3://bucket/a/../b': invalid store prefix"),
    ("", "store URI is empty"),
    ("s3:/bucket/x", "store URI 's3:/bucket/x': malformed (use s3://bucket[/prefix], file://path or a plain path)"),
    ("file:relative", "store URI 'file:relative': malformed"),
])
def test_open_store_rejects_bad_uris(uri, message):
    with pytest.raises(XferError) as err:
        open_store(uri)
    assert one_line(err).startswith(message)


def test_bad_multipart_setting_names_the_variable(monkeypatch):
    monkeypatch.setenv("XFER_S3_MULTIPART_CHUNK_MB", "lots")
    with pytest.raises(XferError, match=r"\$XFER_S3_MULTIPART_CHUNK_MB='lots': expected a positive number"):
        open_store("s3://bucket")


# --- S3 failures -----------------------------------------------------------------------------------


def test_s3_unreachable_endpoint_is_one_clear_line(monkeypatch):
    port = free_port()  # nothing listens there any more
    monkeypatch.setenv("XFER_S3_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "unused")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "unused")
    store = S3Store("bucket", "p", max_attempts=1, retry_seconds=0.5)
    started = time.monotonic()
    for call in (lambda: store.get_bytes("k"), lambda: store.is_committed("out"), lambda: store.list("")):
        with pytest.raises(StoreUnavailable) as err:
            call()  # never "not committed": an outage must not look like missing work
        assert one_line(err).startswith(f"cannot reach S3 endpoint URL: http://127.0.0.1:{port}")
        assert "gave up after" in str(err.value) and "$XFER_S3_RETRY_SECONDS=0.5" in str(err.value)
    assert time.monotonic() - started < 6


def test_s3_missing_bucket(s3_server, tmp_path):
    store = open_store("s3://no-such-bucket")
    with pytest.raises(StoreError) as err:
        store.get_bytes("k")
    assert one_line(err).startswith("bucket 'no-such-bucket' does not exist")
    with pytest.raises(StoreError, match="bucket 'no-such-bucket' does not exist"):
        store.commit("out", write_tree(tmp_path / "src", TREE))  # through boto3's transfer manager


def test_s3_wrong_secret_is_access_denied_without_leaking_it(s3_server, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-0123456789")
    store = open_store(f"s3://{s3_server.bucket}")
    with pytest.raises(StoreError) as err:
        store.get_bytes("k")
    message = one_line(err)
    assert message.startswith(f"access denied (403 SignatureDoesNotMatch) to s3://{s3_server.bucket}/k")
    assert "not-the-secret" not in message and s3_server.secret_key not in message


def test_s3_without_credentials(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("XFER_S3_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StoreError) as err:
        S3Store("bucket", max_attempts=1, retry_seconds=0).get_bytes("k")
    assert one_line(err).startswith("no S3 credentials found for s3://bucket/k")

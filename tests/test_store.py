"""The store: raw keys, the commit protocol and URI parsing, on a local folder and on a real S3 server (rclone)."""

import hashlib
import json
import os
import random
import re
import socket
import time
import uuid
from pathlib import Path

import pytest

from xfer.errors import StoreError, XferError
from xfer.store import LocalStore, S3Store, open_store

MiB = 1024 * 1024
TREE = {
    "config.json": b'{"hidden_size": 8}\n',
    "weights/model.safetensors": bytes(range(256)) * 40,
    "weights/shards/part-0.bin": b"\x00\x01" * 999,
    "empty.txt": b"",
}


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    """A fresh, empty store: a temporary folder, or a unique prefix in the rclone server's bucket."""
    if request.param == "local":
        return open_store(str(tmp_path / "store"))
    server = request.getfixturevalue("s3_server")
    return open_store(f"s3://{server.bucket}/t-{uuid.uuid4().hex[:10]}")


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
    assert store.list("jobs/j1/output") == sorted([f"jobs/j1/output/{rel}" for rel in TREE]
                                                 + ["jobs/j1/output/_COMPLETE", "jobs/j1/output/manifest.json"])
    raw = store.get_bytes("jobs/j1/output/manifest.json")
    assert json.loads(raw) == manifest
    assert store.get_bytes("jobs/j1/output/_COMPLETE").decode() == hashlib.sha256(raw).hexdigest()

    assert store.fetch("jobs/j1/output/", tmp_path / "dst") == manifest
    assert read_tree(tmp_path / "dst") == TREE
    assert store.read_committed("jobs/j1/output", "weights/shards/part-0.bin") == TREE["weights/shards/part-0.bin"]
    with pytest.raises(StoreError, match="no file 'nope'"):
        store.read_committed("jobs/j1/output", "nope")


def test_a_crash_before_the_marker_is_never_seen_and_the_retry_overwrites_it(store, tmp_path, monkeypatch):
    def crash(key, data):
        raise KeyboardInterrupt("killed before the marker")

    monkeypatch.setattr(store, "_put_marker", crash)
    with pytest.raises(KeyboardInterrupt):
        store.commit("out", write_tree(tmp_path / "first", {**TREE, "stale.txt": b"from the first attempt"}))
    assert "out/weights/model.safetensors" in store.list("out")  # the files did land
    assert store.exists("out/manifest.json") and not store.exists("out/_COMPLETE")
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
    assert "out/stale.txt" not in store.list("out")  # what only the crashed attempt wrote is gone
    store.fetch("out", tmp_path / "dst")
    assert read_tree(tmp_path / "dst") == second


def test_marker_must_match_the_manifest(store, tmp_path):
    store.commit("out", write_tree(tmp_path / "src", TREE))
    marker = store.get_bytes("out/_COMPLETE")
    store.put_bytes("out/_COMPLETE", b"0" * 64)
    assert not store.is_committed("out")
    store.put_bytes("out/_COMPLETE", marker)
    assert store.is_committed("out")
    store.put_bytes("out/manifest.json", store.get_bytes("out/manifest.json").replace(b'"size"', b'"size" '))
    assert not store.is_committed("out")
    # a later commit repairs it: stale marker removed, files, manifest and marker written again
    store.commit("out", tmp_path / "src")
    assert store.is_committed("out")


@pytest.mark.parametrize("bad", [b"X" * len(TREE["weights/model.safetensors"]), b"short"], ids=["same-size", "resized"])
def test_fetch_and_read_committed_detect_a_corrupted_file(store, tmp_path, bad):
    store.commit("out", write_tree(tmp_path / "src", TREE))
    store.put_bytes("out/weights/model.safetensors", bad)
    assert store.is_committed("out")  # the marker only covers the manifest: fetch checks the files
    dst = tmp_path / "dst"
    with pytest.raises(StoreError) as err:
        store.fetch("out", dst)
    assert "out/weights/model.safetensors" in one_line(err)
    assert ("size" if bad == b"short" else "sha256") in str(err.value)
    assert not (dst / "weights" / "model.safetensors").exists()
    assert not [p for p in dst.rglob("*") if p.is_file() and p.name.startswith(".")]  # no temp files left
    with pytest.raises(StoreError, match="corrupt file .*out/weights/model.safetensors"):
        store.read_committed("out", "weights/model.safetensors")


def test_fetch_keeps_verified_local_files_and_replaces_bad_ones(store, tmp_path):
    store.commit("out", write_tree(tmp_path / "src", TREE))
    dst = tmp_path / "dst"
    store.fetch("out", dst)
    (dst / "config.json").write_bytes(b"edited locally")
    store.fetch("out", dst)
    assert (dst / "config.json").read_bytes() == TREE["config.json"]  # re-downloaded
    store.put_bytes("out/weights/model.safetensors", b"corrupted in the store")
    store.fetch("out", dst)  # the verified local copy is kept: nothing downloaded
    assert read_tree(dst) == TREE
    with pytest.raises(StoreError, match="corrupt file"):
        store.fetch("out", tmp_path / "fresh")


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

    def fail(prefix):
        raise StoreError("simulated failure after the marker went")

    monkeypatch.setattr(store, "delete_prefix", fail)
    with pytest.raises(StoreError, match="simulated"):
        store.uncommit("ckpt/step-1")
    assert not store.exists("ckpt/step-1/_COMPLETE") and store.exists("ckpt/step-1/config.json")
    assert not store.is_committed("ckpt/step-1")
    monkeypatch.undo()
    store.uncommit("ckpt/step-1")
    assert store.list("ckpt/step-1") == []
    assert store.is_committed("ckpt/step-2")
    assert store.fetch("ckpt/step-2", tmp_path / "dst")["files"].keys() == TREE.keys()


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
    store = S3Store("bucket", "p", max_attempts=1)
    started = time.monotonic()
    for call in (lambda: store.get_bytes("k"), lambda: store.is_committed("out"), lambda: store.list("")):
        with pytest.raises(StoreError) as err:
            call()  # never "not committed": an outage must not look like missing work
        assert one_line(err).startswith(f"cannot reach S3 endpoint URL: http://127.0.0.1:{port}")
    assert time.monotonic() - started < 5


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
        S3Store("bucket", max_attempts=1).get_bytes("k")
    assert one_line(err).startswith("no S3 credentials found for s3://bucket/k")


def test_s3_marker_falls_back_when_conditional_writes_are_unsupported(s3_server, tmp_path, monkeypatch):
    from botocore.exceptions import ClientError

    store = open_store(f"s3://{s3_server.bucket}/t-{uuid.uuid4().hex[:10]}")
    real_put, conditional = store._client.put_object, []

    def put_object(**kwargs):
        if "IfNoneMatch" in kwargs:
            conditional.append(kwargs["Key"])
            raise ClientError({"Error": {"Code": "NotImplemented", "Message": "not here"},
                               "ResponseMetadata": {"HTTPStatusCode": 501}}, "PutObject")
        return real_put(**kwargs)

    monkeypatch.setattr(store._client, "put_object", put_object)
    src = write_tree(tmp_path / "src", TREE)
    store.commit("one", src)
    store.commit("two", src)
    assert store.is_committed("one") and store.is_committed("two")
    assert conditional == [f"{store.prefix}/one/_COMPLETE"]  # tried once, then remembered


def test_s3_marker_refused_because_another_writer_made_one(s3_server, tmp_path, monkeypatch):
    from botocore.exceptions import ClientError

    store = open_store(f"s3://{s3_server.bucket}/t-{uuid.uuid4().hex[:10]}")
    real_put = store._client.put_object

    def put_object(**kwargs):
        if "IfNoneMatch" in kwargs:  # as if another writer created the marker a moment ago
            raise ClientError({"Error": {"Code": "PreconditionFailed", "Message": "exists"},
                               "ResponseMetadata": {"HTTPStatusCode": 412}}, "PutObject")
        return real_put(**kwargs)

    monkeypatch.setattr(store._client, "put_object", put_object)
    with pytest.raises(StoreError, match="another writer is committing it at the same time"):
        store.commit("out", write_tree(tmp_path / "src", TREE))
    assert not store.is_committed("out")

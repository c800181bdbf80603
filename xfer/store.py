"""The object store every job reads its inputs from and commits its outputs to: a local folder or S3.

Keys are '/'-separated paths relative to the store root, in canonical form (no leading or trailing '/',
no empty, '.' or '..' segments). A job's output is a *prefix*: a folder of files committed as a whole by

    1. uploading every file to  <prefix>/<relpath>
    2. writing                  <prefix>/manifest.json   {"files": {relpath: {size, sha256}}, "meta", "committed_at"}
    3. writing the marker       <prefix>/_COMPLETE       (the sha256 of the manifest's bytes)

A prefix counts as committed only when the marker is present and matches the manifest, so a reader never
sees a half-written output: a job killed at any point leaves no marker, and its retry overwrites what the
killed attempt left. `fetch` verifies every file's size and sha256 against the manifest.

`open_store(uri)` picks the backend: `file:///abs/path`, `file://rel/path` or a plain path -> LocalStore,
`s3://bucket[/prefix]` -> S3Store (boto3; endpoint from $XFER_S3_ENDPOINT_URL, else boto3's own settings).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from abc import ABC, abstractmethod
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from xfer.errors import StoreError, XferError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MARKER = "_COMPLETE"
TMP_TAG = ".xfer-tmp-"  # temporary files: hidden from listings, renamed into place when complete
MiB = 1024 * 1024
_CHUNK = 4 * MiB


# --- keys and hashes -------------------------------------------------------------------------------


def _check_key(key: str, what: str = "key") -> str:
    """A key in canonical form, else StoreError (S3 servers such as MinIO and rclone reject the rest)."""
    if not isinstance(key, str) or not key:
        raise StoreError(f"invalid store {what} {key!r}: must be a non-empty string")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts) or "\0" in key:
        raise StoreError(f"invalid store {what} {key!r}: use '/'-separated names without a leading or "
                         "trailing '/', '//', '.' or '..'")
    return key


def _norm_prefix(prefix: str, allow_root: bool = True) -> str:
    """A prefix without its trailing '/' ('' is the whole store when allow_root)."""
    stripped = (prefix or "").rstrip("/")
    if not stripped:
        if allow_root:
            return ""
        raise StoreError(f"invalid store prefix {prefix!r}: must name a folder, not the store root")
    return _check_key(stripped, "prefix")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _local_files(local_dir: Path) -> dict[str, Path]:
    """Every file under local_dir (following symlinks), by '/'-separated relative path, sorted."""
    files = {}
    for dirpath, dirnames, filenames in os.walk(local_dir, followlinks=True):
        dirnames.sort()
        for name in filenames:
            path = Path(dirpath, name)
            if not name.startswith(TMP_TAG) and path.is_file():
                files[path.relative_to(local_dir).as_posix()] = path
    return dict(sorted(files.items()))


def _temp_beside(path: Path) -> Path:
    return path.with_name(f"{TMP_TAG}{uuid.uuid4().hex[:12]}-{path.name}")


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


# --- the interface ---------------------------------------------------------------------------------


class Store(ABC):
    """Raw key/value access plus the commit protocol; subclasses implement the raw part."""

    uri: str

    # raw key/value ----------------------------------------------------------------------------------

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def _read(self, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist (other failures raise StoreError)."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """All keys in the folder `prefix` (recursive, sorted); '' lists the whole store."""

    @abstractmethod
    def _delete_keys(self, keys: list[str]) -> None: ...

    @abstractmethod
    def upload_file(self, local_path, key: str) -> None: ...

    @abstractmethod
    def _download_raw(self, key: str, path: Path) -> None:
        """Write the object to `path` (not atomically; callers pass a temporary name)."""

    @abstractmethod
    def _put_marker(self, key: str, data: bytes) -> bool:
        """Create `key` only if absent where the backend can (False: it already exists), else overwrite."""

    def _where(self, key: str) -> str:
        return f"{self.uri.rstrip('/')}/{key}"

    def get_bytes(self, key: str) -> bytes:
        data = self._read(_check_key(key))
        if data is None:
            raise StoreError(f"not found in store: {self._where(key)}")
        return data

    def delete_prefix(self, prefix: str) -> None:
        """Delete every key in the folder `prefix` (refuses the store root)."""
        prefix = _norm_prefix(prefix, allow_root=False)
        self._delete_keys(self.list(prefix))

    def download_file(self, key: str, local_path) -> None:
        """Download to a temporary file beside local_path, then rename it into place."""
        _check_key(key)
        dest = Path(local_path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_beside(dest)
        try:
            self._download_raw(key, tmp)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    # commit protocol --------------------------------------------------------------------------------

    def _committed_manifest(self, prefix: str) -> dict | None:
        marker = self._read(f"{prefix}/{MARKER}")
        if marker is None:
            return None
        raw = self._read(f"{prefix}/{MANIFEST}")
        if raw is None or hashlib.sha256(raw).hexdigest() != marker.decode("utf-8", "replace").strip():
            return None
        return json.loads(raw)

    def is_committed(self, prefix: str) -> bool:
        """True when the marker is present and matches the manifest's sha256."""
        return self._committed_manifest(_norm_prefix(prefix, allow_root=False)) is not None

    def manifest(self, prefix: str) -> dict:
        prefix = _norm_prefix(prefix, allow_root=False)
        found = self._committed_manifest(prefix)
        if found is None:
            raise StoreError(f"not committed: {self._where(prefix)} (no {MARKER} marker matching its manifest)")
        return found

    def commit(self, prefix: str, local_dir, meta: dict | None = None) -> dict:
        """Upload local_dir to prefix, then its manifest, then the marker; returns the manifest.

        An already-committed prefix is left alone and its manifest returned. Files a previous, interrupted
        attempt left under the prefix are overwritten (or deleted when this commit has no such file).
        """
        prefix = _norm_prefix(prefix, allow_root=False)
        existing = self._committed_manifest(prefix)
        if existing is not None:
            log.debug("already committed: %s", self._where(prefix))
            return existing
        local_dir = Path(local_dir)
        if not local_dir.is_dir():
            raise StoreError(f"cannot commit {self._where(prefix)}: local folder not found: {local_dir}")
        files = _local_files(local_dir)
        for reserved in (MANIFEST, MARKER):
            if reserved in files:
                raise StoreError(f"cannot commit {local_dir}: it contains {reserved!r}, a name the store reserves")
        manifest = {
            "files": {rel: {"size": path.stat().st_size, "sha256": _sha256_file(path)} for rel, path in files.items()},
            "meta": dict(meta or {}),
            "committed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        manifest_bytes = json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8")

        marker_key = f"{prefix}/{MARKER}"
        if self.exists(marker_key):  # a marker not matching its manifest: an interrupted earlier attempt
            self._delete_keys([marker_key])
        for rel, path in files.items():
            self.upload_file(path, f"{prefix}/{rel}")
        wanted = {f"{prefix}/{rel}" for rel in files} | {f"{prefix}/{MANIFEST}", marker_key}
        self._delete_keys([k for k in self.list(prefix) if k not in wanted])
        self.put_bytes(f"{prefix}/{MANIFEST}", manifest_bytes)
        if not self._put_marker(marker_key, hashlib.sha256(manifest_bytes).hexdigest().encode("ascii")):
            winner = self._committed_manifest(prefix)
            if winner is not None:
                return winner
            raise StoreError(f"cannot commit {self._where(prefix)}: another writer is committing it at the same time")
        log.debug("committed %s (%d files)", self._where(prefix), len(files))
        return json.loads(manifest_bytes)

    def _mismatch(self, prefix: str, rel: str, info: dict, size: int, sha: str) -> StoreError | None:
        if size != info["size"]:
            return StoreError(f"corrupt file {self._where(f'{prefix}/{rel}')}: size {size} bytes, "
                              f"the manifest says {info['size']}")
        if sha != info["sha256"]:
            return StoreError(f"corrupt file {self._where(f'{prefix}/{rel}')}: sha256 {sha}, "
                              f"the manifest says {info['sha256']}")
        return None

    def fetch(self, prefix: str, local_dir) -> dict:
        """Download a committed prefix into local_dir, verifying every file; returns the manifest.

        Files already in local_dir with the manifest's size and sha256 are kept as they are (a cache).
        Each download goes to a temporary name and is renamed into place once verified.
        """
        prefix = _norm_prefix(prefix, allow_root=False)
        manifest = self.manifest(prefix)
        local_dir = Path(local_dir)
        for rel, info in sorted(manifest["files"].items()):
            _check_key(rel, "manifest path")
            dest = local_dir / rel
            if dest.is_file() and dest.stat().st_size == info["size"] and _sha256_file(dest) == info["sha256"]:
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = _temp_beside(dest)
            try:
                self._download_raw(f"{prefix}/{rel}", tmp)
                problem = self._mismatch(prefix, rel, info, tmp.stat().st_size, _sha256_file(tmp))
                if problem:
                    raise problem
                os.replace(tmp, dest)
            finally:
                tmp.unlink(missing_ok=True)
        return manifest

    def read_committed(self, prefix: str, relpath: str) -> bytes:
        """One file of a committed prefix, verified against the manifest."""
        prefix = _norm_prefix(prefix, allow_root=False)
        info = self.manifest(prefix)["files"].get(relpath)
        if info is None:
            raise StoreError(f"no file {relpath!r} in the committed output {self._where(prefix)}")
        data = self.get_bytes(f"{prefix}/{relpath}")
        problem = self._mismatch(prefix, relpath, info, len(data), hashlib.sha256(data).hexdigest())
        if problem:
            raise problem
        return data

    def uncommit(self, prefix: str) -> None:
        """Delete the marker first (readers stop trusting the prefix at once), then everything else."""
        prefix = _norm_prefix(prefix, allow_root=False)
        self._delete_keys([f"{prefix}/{MARKER}"])
        self.delete_prefix(prefix)


# --- local folder ----------------------------------------------------------------------------------


class LocalStore(Store):
    """A store in a local (or shared, mounted) folder; every write is a temporary file + os.replace."""

    def __init__(self, root):
        self.root = Path(os.path.abspath(Path(root).expanduser()))
        self.uri = f"file://{self.root.as_posix()}"

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def _write(self, dest: Path, fill, exclusive: bool = False) -> bool:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_beside(dest)
        try:
            with open(tmp, "wb") as f:
                fill(f)
                f.flush()
                os.fsync(f.fileno())
            if not exclusive:
                os.replace(tmp, dest)
                return True
            try:
                os.link(tmp, dest)  # atomic create-if-absent
            except FileExistsError:
                return False
            except OSError:  # a filesystem without hard links
                os.replace(tmp, dest)
            return True
        finally:
            tmp.unlink(missing_ok=True)

    def put_bytes(self, key: str, data: bytes) -> None:
        self._write(self._path(key), lambda f: f.write(data))

    def _put_marker(self, key: str, data: bytes) -> bool:
        return self._write(self._path(key), lambda f: f.write(data), exclusive=True)

    def _read(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {self._where(key)}: {exc.strerror or exc}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        prefix = _norm_prefix(prefix)
        base = self.root / prefix if prefix else self.root
        if not base.is_dir():
            return []
        return sorted(f"{prefix}/{rel}" if prefix else rel for rel in _local_files(base))

    def _delete_keys(self, keys: list[str]) -> None:
        for key in keys:
            self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        prefix = _norm_prefix(prefix, allow_root=False)
        try:
            shutil.rmtree(self.root / prefix)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"cannot delete {self._where(prefix)}: {exc.strerror or exc}") from exc

    def upload_file(self, local_path, key: str) -> None:
        with open(local_path, "rb") as src:
            self._write(self._path(key), lambda f: shutil.copyfileobj(src, f, _CHUNK))

    def _download_raw(self, key: str, path: Path) -> None:
        try:
            shutil.copyfile(self._path(key), path)
        except (FileNotFoundError, IsADirectoryError):
            raise StoreError(f"not found in store: {self._where(key)}") from None


# --- S3 --------------------------------------------------------------------------------------------


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


class S3Store(Store):
    """A bucket (and optional key prefix) on S3 or an S3-compatible server (MinIO, SeaweedFS, rclone).

    Credentials come from boto3's usual chain only (environment, profile, IRSA / workload identity).
    The endpoint is $XFER_S3_ENDPOINT_URL when set, else boto3's own (AWS_ENDPOINT_URL, config, AWS).
    """

    def __init__(self, bucket: str, prefix: str = "", *, multipart_threshold: int | None = None,
                 multipart_chunksize: int | None = None, max_concurrency: int = 16, max_attempts: int = 5,
                 endpoint_url: str | None = None):
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        if not bucket or "/" in bucket:
            raise XferError(f"invalid S3 bucket name {bucket!r}")
        self.bucket = bucket
        self.prefix = _norm_prefix(prefix)
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        endpoint_url = endpoint_url or os.environ.get("XFER_S3_ENDPOINT_URL") or None
        config = Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"max_attempts": max_attempts, "mode": "standard"},
            max_pool_connections=max(10, max_concurrency + 4),
        )
        kwargs = {"endpoint_url": endpoint_url} if endpoint_url else {}
        self._client = boto3.session.Session().client("s3", config=config, **kwargs)
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold or _env_mib("XFER_S3_MULTIPART_THRESHOLD_MB", 64 * MiB),
            multipart_chunksize=multipart_chunksize or _env_mib("XFER_S3_MULTIPART_CHUNK_MB", 64 * MiB),
            max_concurrency=max_concurrency,
            use_threads=True,
            preferred_transfer_client="classic",
        )
        self._conditional_writes = True  # until the server shows it does not support IfNoneMatch

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    # errors -----------------------------------------------------------------------------------------

    @staticmethod
    def _code(exc) -> tuple[str, int]:
        response = getattr(exc, "response", None) or {}
        return (str(response.get("Error", {}).get("Code", "")),
                int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0))

    def _translate(self, exc: Exception, where: str) -> StoreError:
        from boto3.exceptions import S3UploadFailedError
        from botocore import exceptions as bx

        if isinstance(exc, S3UploadFailedError) and isinstance(exc.__context__, Exception):
            exc = exc.__context__  # boto3's transfer wraps the ClientError in a string
        endpoint = self._client.meta.endpoint_url
        if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ConnectionClosedError)):
            return StoreError(f"cannot reach S3 endpoint URL: {endpoint} (accessing {where})")
        if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError)):
            return StoreError(f"no S3 credentials found for {where}: set AWS_ACCESS_KEY_ID and "
                              "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or workload identity")
        if isinstance(exc, bx.ClientError):
            code, status = self._code(exc)
            if code == "NoSuchBucket":
                return StoreError(f"bucket {self.bucket!r} does not exist (endpoint {endpoint})")
            if code in ("NoSuchKey", "NotFound", "404"):
                return StoreError(f"not found in store: {where}")
            if status == 403 or code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                return StoreError(f"access denied (403 {code}) to {where}: check the S3 credentials and "
                                  "the bucket's permissions")
            message = exc.response.get("Error", {}).get("Message", "")
            return StoreError(_one_line(f"S3 error {code or status} for {where}: {message}"))
        return StoreError(_one_line(f"S3 error for {where}: {type(exc).__name__}: {exc}"))

    @contextmanager
    def _errors(self, key: str = ""):
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except (BotoCoreError, ClientError, Boto3Error) as exc:
            raise self._translate(exc, self._where(key) if key else self.uri) from exc

    # raw key/value ----------------------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes) -> None:
        with self._errors(key):
            self._client.put_object(Bucket=self.bucket, Key=self._key(_check_key(key)), Body=data)

    def _put_marker(self, key: str, data: bytes) -> bool:
        """Create the marker with IfNoneMatch="*" where the server supports it, else overwrite it."""
        from botocore.exceptions import ClientError

        if self._conditional_writes:
            with self._errors(key):
                try:
                    self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*")
                    return True
                except ClientError as exc:
                    code, status = self._code(exc)
                    if status in (409, 412) or code in ("PreconditionFailed", "ConditionalRequestConflict"):
                        return False
                    if status not in (400, 501) and code not in ("NotImplemented", "InvalidArgument", "InvalidRequest"):
                        raise
                    log.debug("the S3 server refused IfNoneMatch (%s): writing markers unconditionally", code)
                    self._conditional_writes = False
        self.put_bytes(key, data)
        return True

    def _read(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        with self._errors(key):
            try:
                return self._client.get_object(Bucket=self.bucket, Key=self._key(_check_key(key)))["Body"].read()
            except ClientError as exc:
                if self._code(exc)[0] in ("NoSuchKey", "NotFound", "404"):
                    return None
                raise

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        with self._errors(key):
            try:
                self._client.head_object(Bucket=self.bucket, Key=self._key(_check_key(key)))
                return True
            except ClientError as exc:
                if self._code(exc)[1] == 404:
                    return False
                raise

    def list(self, prefix: str) -> list[str]:
        prefix = _norm_prefix(prefix)
        folder = self._key(prefix) if prefix else self.prefix
        s3_prefix = f"{folder}/" if folder else ""
        root = f"{self.prefix}/" if self.prefix else ""
        keys = []
        with self._errors(prefix):
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=s3_prefix):
                keys.extend(obj["Key"][len(root):] for obj in page.get("Contents", []))
        return sorted(keys)

    def _delete_keys(self, keys: list[str]) -> None:
        from botocore.exceptions import ClientError

        for start in range(0, len(keys), 1000):
            batch = keys[start:start + 1000]
            with self._errors(batch[0]):
                try:
                    response = self._client.delete_objects(
                        Bucket=self.bucket, Delete={"Objects": [{"Key": self._key(k)} for k in batch], "Quiet": True})
                except ClientError as exc:
                    if self._code(exc)[0] not in ("NotImplemented", "MissingContentMD5", "InvalidRequest"):
                        raise
                    for key in batch:  # a server without a usable DeleteObjects
                        self._client.delete_object(Bucket=self.bucket, Key=self._key(key))
                    continue
            errors = response.get("Errors") or []
            if errors:
                first = errors[0]
                raise StoreError(_one_line(f"cannot delete s3://{self.bucket}/{first.get('Key')}: "
                                           f"{first.get('Code')} {first.get('Message', '')}"))

    def upload_file(self, local_path, key: str) -> None:
        with self._errors(key):
            self._client.upload_file(str(local_path), self.bucket, self._key(_check_key(key)), Config=self._transfer)

    def _download_raw(self, key: str, path: Path) -> None:
        with self._errors(key):
            self._client.download_file(self.bucket, self._key(_check_key(key)), str(path), Config=self._transfer)


# --- URIs ------------------------------------------------------------------------------------------


def open_store(uri: str) -> Store:
    """The store at `uri`: file:///abs, file://relative (to the cwd), a plain path, or s3://bucket[/prefix]."""
    if not uri or not uri.strip():
        raise XferError("store URI is empty (use a folder path, file:// or s3://)")
    if "://" not in uri:
        return LocalStore(uri)
    scheme, _, rest = uri.partition("://")
    if scheme == "file":
        if not rest:
            raise XferError(f"store URI {uri!r}: missing the folder path")
        return LocalStore(rest)
    if scheme == "s3":
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise XferError(f"store URI {uri!r}: missing the bucket name (use s3://bucket or s3://bucket/prefix)")
        try:
            return S3Store(bucket, prefix)
        except StoreError as exc:
            raise XferError(f"store URI {uri!r}: {exc}") from None
    raise XferError(f"store URI {uri!r}: unsupported scheme {scheme!r} (use file:// or s3://)")

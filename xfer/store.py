"""The object store every job reads its inputs from and commits its outputs to: a local folder or S3.

Keys are '/'-separated paths relative to the store root, in canonical form (no leading or trailing '/',
no empty, '.' or '..' segments). A job's output is a *prefix*: a folder of files committed as a whole.

Committing: one writer wins. `commit(prefix, folder)` stages the files under a private *attempt*, then
publishes that attempt in one atomic step that at most one writer can win. Every other writer sees that it
lost and returns the winner's manifest (same job id, same meaning); nobody ever mixes files of two attempts.
What the atomic step is depends on the backend:

- local folder (LocalStore): the attempt is a hidden folder beside the prefix holding the files,
  `manifest.json` and the marker `_COMPLETE`; it is published by one rename(2) onto the prefix. The kernel
  lets a folder replace only an absent or empty one, so exactly one rename wins; the others fail and read
  the winner's marker. A committed prefix is laid out as `<prefix>/<relpath>`, `<prefix>/manifest.json`,
  `<prefix>/_COMPLETE` (holding the manifest's sha256).
- S3 (xfer/s3store.py): attempts are uploaded under `<prefix>/_attempts/<attempt>/`; the marker
  `<prefix>/_COMPLETE` names the winning attempt. It is created with If-None-Match where the server honours
  it, and otherwise by a candidate protocol that does not rely on the server (argued there).

Reading: a prefix is committed only when its marker names a manifest whose sha256 it holds. The marker is
either that sha256 (files directly under the prefix: the local layout, and S3 outputs committed before
attempts existed, which stay readable) or `{"attempt": A, "manifest_sha256": H}` (files under
`<prefix>/_attempts/A/`). `is_committed`, `manifest`, `fetch` and `read_committed` follow it.

Integrity: `fetch` and `read_committed` verify every file's size and sha256 against the manifest. A committed
output that fails (a byte flipped in storage, a file gone) is moved aside by `quarantine` to
`quarantine/<prefix>/<UTC time>/` - never deleted - with one log line, and `CorruptOutput` is raised: the
prefix is no longer committed, so its job is recomputed (`xfer.runner` does so in the same run when a
dependant found the damage). A marker that names no valid manifest is quarantined by the next commit.

Faults: the local store retries nothing and turns OS errors (disk full, permissions) into one-line
StoreErrors. The S3 store retries transient faults within a bounded time and then raises StoreUnavailable,
a TemporaryFailure (`xfer job run` exits 75): see xfer/s3store.py.

`open_store(uri)` picks the backend: `file:///abs/path`, `file://rel/path` or a plain path -> LocalStore,
`s3://bucket[/prefix]` -> S3Store (boto3; endpoint from $XFER_S3_ENDPOINT_URL, else boto3's own settings).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from xfer.errors import StoreError, TemporaryFailure, XferError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MARKER = "_COMPLETE"
ATTEMPTS = "_attempts"      # S3: <prefix>/_attempts/<attempt>/ holds one writer's staged files
CANDIDATES = "_candidates"  # S3: <prefix>/_candidates/<attempt> is one writer's claim (xfer/s3store.py)
QUARANTINE = "quarantine"   # quarantine/<prefix>/<UTC time>/: committed outputs that failed verification
TMP_TAG = ".xfer-tmp-"  # local temporary files and attempt folders: hidden from listings
MiB = 1024 * 1024
_CHUNK = 4 * MiB
_ATTEMPT_ID = re.compile(r"[0-9a-f]{32}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class StoreUnavailable(TemporaryFailure):
    """The store stayed unreachable or kept failing after its retries: run the job again later (exit 75)."""


class CorruptOutput(StoreError):
    """A committed output failed verification; it has been quarantined (`prefix`, `moved_to`)."""

    def __init__(self, message: str, prefix: str, moved_to: str | None):
        super().__init__(message)
        self.prefix, self.moved_to = prefix, moved_to


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


def _commit_prefix(prefix: str) -> str:
    prefix = _norm_prefix(prefix, allow_root=False)
    if any(part in (ATTEMPTS, CANDIDATES, MARKER) for part in prefix.split("/")):
        raise StoreError(f"invalid store prefix {prefix!r}: {ATTEMPTS}, {CANDIDATES} and {MARKER} are "
                         "names the store reserves")
    return prefix


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _local_files(local_dir: Path) -> dict[str, Path]:
    """Every file under local_dir (following symlinks), by '/'-separated relative path, sorted; temporary
    files and folders (TMP_TAG) are left out."""
    files = {}
    for dirpath, dirnames, filenames in os.walk(local_dir, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(TMP_TAG))
        for name in filenames:
            path = Path(dirpath, name)
            if not name.startswith(TMP_TAG) and path.is_file():
                files[path.relative_to(local_dir).as_posix()] = path
    return dict(sorted(files.items()))


def _temp_beside(path: Path) -> Path:
    return path.with_name(f"{TMP_TAG}{uuid.uuid4().hex[:12]}-{path.name}")


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _utc_stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")


def marker_bytes(attempt: str | None, manifest_sha256: str) -> bytes:
    """The marker's content: the manifest's sha256 (files under the prefix) or a pointer to the attempt."""
    if attempt is None:
        return manifest_sha256.encode("ascii")
    return json.dumps({"attempt": attempt, "manifest_sha256": manifest_sha256}, sort_keys=True).encode("ascii")


def parse_marker(raw: bytes) -> tuple[str | None, str] | None:
    """(attempt or None, manifest sha256) from a marker's bytes; None when they are not a marker."""
    text = raw.decode("ascii", "replace").strip()
    if _SHA256.fullmatch(text):
        return None, text
    try:
        value = json.loads(text)
        attempt, sha = value["attempt"], value["manifest_sha256"]
    except (ValueError, TypeError, KeyError):
        return None
    if isinstance(attempt, str) and _ATTEMPT_ID.fullmatch(attempt) and isinstance(sha, str) and _SHA256.fullmatch(sha):
        return attempt, sha
    return None


@dataclass(frozen=True)
class Committed:
    """A published output: the key folder its files lie in, its manifest, and the winning attempt (None:
    the files lie directly under the prefix)."""

    root: str
    manifest: dict
    manifest_sha256: str
    attempt: str | None = None


# --- the interface ---------------------------------------------------------------------------------


class Store(ABC):
    """Raw key/value access plus the commit protocol; subclasses implement the raw part and `_publish`."""

    uri: str
    marker_grace_seconds: float = 0.0  # how young a marker naming no manifest may be before it is broken
    settle_seconds: float = 0.05  # longer than any write takes to become visible to every reader (leases)

    # raw key/value ----------------------------------------------------------------------------------

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def _read(self, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist (other failures raise StoreError)."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def age(self, key: str) -> float | None:
        """Seconds since `key` was last written, by the store's own clock; None when it does not exist."""

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
    def _publish(self, prefix: str, files: dict[str, Path], manifest_bytes: bytes) -> Committed:
        """Stage `files` and the manifest as a new attempt and try to publish it; return what is committed
        at `prefix` afterwards: this attempt when it won, else the winner's."""

    @abstractmethod
    def _move(self, prefix: str, dest: str) -> bool:
        """Move every key of the folder `prefix` to the folder `dest`; the prefix stops being committed
        before anything else leaves it. False when there was nothing to move."""

    def ages(self, prefix: str) -> dict[str, float]:
        """Every key of the folder `prefix` with its age in seconds (see `age`)."""
        found = {key: self.age(key) for key in self.list(prefix)}
        return {key: age for key, age in found.items() if age is not None}

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

    # reading committed outputs ----------------------------------------------------------------------

    def _resolve(self, prefix: str) -> Committed | None:
        """What the marker of `prefix` publishes, or None (no marker, or one naming no matching manifest)."""
        raw = self._read(f"{prefix}/{MARKER}")
        parsed = parse_marker(raw) if raw is not None else None
        if parsed is None:
            return None
        attempt, sha = parsed
        root = prefix if attempt is None else f"{prefix}/{ATTEMPTS}/{attempt}"
        manifest_raw = self._read(f"{root}/{MANIFEST}")
        if manifest_raw is None or hashlib.sha256(manifest_raw).hexdigest() != sha:
            return None
        try:
            manifest = json.loads(manifest_raw)
        except ValueError:
            return None
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
            return None
        return Committed(root, manifest, sha, attempt)

    def is_committed(self, prefix: str) -> bool:
        """True when the marker names a manifest whose sha256 it holds."""
        return self._resolve(_norm_prefix(prefix, allow_root=False)) is not None

    def _committed(self, prefix: str) -> Committed:
        found = self._resolve(prefix)
        if found is None:
            raise StoreError(f"not committed: {self._where(prefix)} (no {MARKER} marker matching its manifest)")
        return found

    def manifest(self, prefix: str) -> dict:
        return self._committed(_norm_prefix(prefix, allow_root=False)).manifest

    def _mismatch(self, key: str, info: dict, size: int, sha: str) -> str | None:
        if size != info["size"]:
            return f"corrupt file {self._where(key)}: size {size} bytes, the manifest says {info['size']}"
        if sha != info["sha256"]:
            return f"corrupt file {self._where(key)}: sha256 {sha}, the manifest says {info['sha256']}"
        return None

    def _corrupt(self, prefix: str, found: Committed, problem: str) -> StoreError:
        """Quarantine the committed output `found` at `prefix` and return the error to raise (unless the
        prefix was replaced or uncommitted while it was being read: then nothing is moved)."""
        now = self._resolve(prefix)
        if now is None or now.manifest_sha256 != found.manifest_sha256:
            return StoreError(f"{self._where(prefix)} changed while it was being read ({problem}): try again")
        moved_to = self.quarantine(prefix, problem)
        where = f"moved to {self._where(moved_to)}" if moved_to else "already moved aside by another reader"
        return CorruptOutput(f"{problem}; the output is quarantined ({where}) and its job will be recomputed",
                             prefix, moved_to)

    def _fetch_file(self, key: str, info: dict, dest: Path, attempts: int) -> str | None:
        """Download `key` to `dest` when it matches `info`; else the mismatch (after `attempts` tries)."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        problem = None
        for _ in range(attempts):
            tmp = _temp_beside(dest)
            try:
                try:
                    self._download_raw(key, tmp)
                except StoreError as exc:
                    if self.exists(key):
                        raise
                    return f"file {self._where(key)} of the committed output is missing ({exc})"
                problem = self._mismatch(key, info, tmp.stat().st_size, _sha256_file(tmp))
                if problem is None:
                    os.replace(tmp, dest)
                    return None
            finally:
                tmp.unlink(missing_ok=True)
        return problem

    download_attempts = 1  # downloads of a mismatching file before it counts as corrupt (S3: 2)

    def fetch(self, prefix: str, local_dir) -> dict:
        """Download a committed prefix into local_dir, verifying every file; returns the manifest.

        Files already in local_dir with the manifest's size and sha256 are kept as they are (a cache).
        Each download goes to a temporary name and is renamed into place once verified. A file that fails
        verification quarantines the output and raises CorruptOutput.
        """
        prefix = _norm_prefix(prefix, allow_root=False)
        found = self._committed(prefix)
        local_dir = Path(local_dir)
        for rel, info in sorted(found.manifest["files"].items()):
            _check_key(rel, "manifest path")
            dest = local_dir / rel
            if dest.is_file() and dest.stat().st_size == info["size"] and _sha256_file(dest) == info["sha256"]:
                continue
            problem = self._fetch_file(f"{found.root}/{rel}", info, dest, self.download_attempts)
            if problem:
                raise self._corrupt(prefix, found, problem)
        return found.manifest

    def read_committed(self, prefix: str, relpath: str) -> bytes:
        """One file of a committed prefix, verified against the manifest (a mismatch quarantines it)."""
        prefix = _norm_prefix(prefix, allow_root=False)
        found = self._committed(prefix)
        info = found.manifest["files"].get(relpath)
        if info is None:
            raise StoreError(f"no file {relpath!r} in the committed output {self._where(prefix)}")
        key = f"{found.root}/{relpath}"
        problem = None
        for _ in range(self.download_attempts):
            data = self._read(key)
            if data is None:
                problem = f"file {self._where(key)} of the committed output is missing"
                break
            problem = self._mismatch(key, info, len(data), hashlib.sha256(data).hexdigest())
            if problem is None:
                return data
        raise self._corrupt(prefix, found, problem)

    # committing -------------------------------------------------------------------------------------

    def commit(self, prefix: str, local_dir, meta: dict | None = None) -> dict:
        """Publish local_dir at prefix unless another writer did; returns the committed manifest.

        An already-committed prefix is left alone and its manifest returned; so is the winner's when another
        writer publishes first. What an interrupted earlier attempt left is never part of the result.
        """
        prefix = _commit_prefix(prefix)
        existing = self._resolve(prefix)
        if existing is not None:
            log.debug("already committed: %s", self._where(prefix))
            return existing.manifest
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
        existing = self._clear_broken_marker(prefix)
        if existing is not None:
            return existing.manifest
        winner = self._publish(prefix, files, manifest_bytes)
        if winner.manifest_sha256 != hashlib.sha256(manifest_bytes).hexdigest():
            log.info("%s was committed by another writer at the same time: using its output", self._where(prefix))
        else:
            log.debug("committed %s (%d files)", self._where(prefix), len(files))
        return winner.manifest

    def _clear_broken_marker(self, prefix: str) -> Committed | None:
        """Quarantine a marker that names no valid manifest (waiting `marker_grace_seconds` for one that is
        being written, on a server whose writes are not atomic); returns the output if it became valid."""
        deadline = time.monotonic() + self.marker_grace_seconds
        while True:
            age = self.age(f"{prefix}/{MARKER}")
            if age is None:
                return None
            found = self._resolve(prefix)
            if found is not None:
                return found
            if age >= self.marker_grace_seconds or time.monotonic() >= deadline:
                self.quarantine(prefix, f"its {MARKER} marker names no matching manifest")
                return None
            time.sleep(min(0.5, max(0.05, self.marker_grace_seconds / 20)))

    def quarantine(self, prefix: str, reason: str) -> str | None:
        """Move everything under `prefix` to quarantine/<prefix>/<UTC time>/ (never deleted), so that it is
        no longer committed; logs one line. Returns the quarantine prefix (None: nothing was there)."""
        prefix = _norm_prefix(prefix, allow_root=False)
        if prefix == QUARANTINE or prefix.startswith(f"{QUARANTINE}/"):
            raise StoreError(f"cannot quarantine {self._where(prefix)}: it is in quarantine already")
        dest = f"{QUARANTINE}/{prefix}/{_utc_stamp()}-{uuid.uuid4().hex[:6]}"
        if not self._move(prefix, dest):
            return None
        log.warning("quarantined %s: %s (moved to %s)", self._where(prefix), _one_line(reason), self._where(dest))
        return dest

    def uncommit(self, prefix: str) -> None:
        """Delete the marker first (readers stop trusting the prefix at once), then what was there before."""
        prefix = _norm_prefix(prefix, allow_root=False)
        keys = self.list(prefix)
        self._delete_keys([f"{prefix}/{MARKER}"])
        self._delete_keys([k for k in keys if k != f"{prefix}/{MARKER}"])


# --- local folder ----------------------------------------------------------------------------------


@contextmanager
def _os_errors(action: str, where: str):
    """OSError -> one-line StoreError naming the action and the place ("No space left on device", ...)."""
    try:
        yield
    except StoreError:
        raise
    except OSError as exc:
        raise StoreError(f"cannot {action} {where}: {exc.strerror or exc}") from exc


class LocalStore(Store):
    """A store in a local (or shared, mounted) folder; every write is a temporary file + os.replace, every
    commit a hidden attempt folder renamed onto the prefix."""

    def __init__(self, root):
        self.root = Path(os.path.abspath(Path(root).expanduser()))
        self.uri = f"file://{self.root.as_posix()}"

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def _write(self, key: str, fill) -> None:
        dest = self._path(key)
        with _os_errors("write", self._where(key)):
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = _temp_beside(dest)
            try:
                with open(tmp, "wb") as f:
                    fill(f)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, dest)
            finally:
                tmp.unlink(missing_ok=True)

    def put_bytes(self, key: str, data: bytes) -> None:
        self._write(key, lambda f: f.write(data))

    def _read(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {self._where(key)}: {exc.strerror or exc}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def age(self, key: str) -> float | None:
        try:
            return max(0.0, time.time() - self._path(key).stat().st_mtime)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def list(self, prefix: str) -> list[str]:
        prefix = _norm_prefix(prefix)
        base = self.root / prefix if prefix else self.root
        if not base.is_dir():
            return []
        with _os_errors("list", self._where(prefix) if prefix else self.uri):
            return sorted(f"{prefix}/{rel}" if prefix else rel for rel in _local_files(base))

    def _delete_keys(self, keys: list[str]) -> None:
        for key in keys:
            with _os_errors("delete", self._where(key)):
                self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        prefix = _norm_prefix(prefix, allow_root=False)
        try:
            shutil.rmtree(self.root / prefix)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"cannot delete {self._where(prefix)}: {exc.strerror or exc}") from exc

    def uncommit(self, prefix: str) -> None:
        prefix = _norm_prefix(prefix, allow_root=False)
        self._delete_keys([f"{prefix}/{MARKER}"])
        self.delete_prefix(prefix)

    def upload_file(self, local_path, key: str) -> None:
        with _os_errors("read", str(local_path)), open(local_path, "rb") as src:
            self._write(key, lambda f: shutil.copyfileobj(src, f, _CHUNK))

    def _download_raw(self, key: str, path: Path) -> None:
        try:
            shutil.copyfile(self._path(key), path)
        except (FileNotFoundError, IsADirectoryError):
            raise StoreError(f"not found in store: {self._where(key)}") from None
        except OSError as exc:
            raise StoreError(f"cannot copy {self._where(key)} to {path}: {exc.strerror or exc}") from exc

    def scratch(self) -> list[Path]:
        """Temporary files and attempt folders left by killed writers (for `xfer gc`)."""
        found = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            for name in dirnames + filenames:
                if name.startswith(TMP_TAG):
                    found.append(Path(dirpath, name))
            dirnames[:] = [d for d in dirnames if not d.startswith(TMP_TAG)]
        return sorted(found)

    # committing: stage a hidden folder, rename it onto the prefix -----------------------------------

    def _publish(self, prefix: str, files: dict[str, Path], manifest_bytes: bytes) -> Committed:
        dest = self._path(prefix)
        sha = hashlib.sha256(manifest_bytes).hexdigest()
        staged = dest.with_name(f"{TMP_TAG}{uuid.uuid4().hex}-{dest.name}")
        try:
            with _os_errors("commit", self._where(prefix)):
                dest.parent.mkdir(parents=True, exist_ok=True)
                staged.mkdir()
                for rel, src in files.items():
                    target = staged / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, target)
                    _fsync(target)
                (staged / MANIFEST).write_bytes(manifest_bytes)
                (staged / MARKER).write_bytes(marker_bytes(None, sha))
                for name in (MANIFEST, MARKER):
                    _fsync(staged / name)
                for _ in range(10):
                    try:
                        os.rename(staged, dest)
                    except OSError as exc:
                        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                            raise
                    else:
                        _fsync(dest.parent)
                        return Committed(prefix, json.loads(manifest_bytes), sha)
                    winner = self._resolve(prefix)
                    if winner is not None:
                        return winner  # another writer's rename came first
                    self._clear_debris(prefix)
                raise StoreError(f"cannot commit {self._where(prefix)}: its folder keeps reappearing "
                                 "without a valid marker (another process is writing there)")
        finally:
            if staged.exists():
                shutil.rmtree(staged, ignore_errors=True)

    def _clear_debris(self, prefix: str) -> None:
        """Clear what occupies `prefix` without being committed: files of an interrupted commit (deleted)
        or a folder whose marker names no valid manifest (quarantined)."""
        if (self._path(prefix) / MARKER).exists():
            self.quarantine(prefix, f"its {MARKER} marker names no matching manifest")
            return
        # Safe against a writer whose rename lands meanwhile: rmtree empties the old folder through a file
        # descriptor, and its final rmdir of the name fails on the (non-empty) committed folder.
        shutil.rmtree(self._path(prefix), ignore_errors=True)

    def _move(self, prefix: str, dest: str) -> bool:
        source, target = self._path(prefix), self._path(dest)
        with _os_errors("quarantine", self._where(prefix)):
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(source, target)
            except FileNotFoundError:
                return False
        return True


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some filesystems cannot fsync a directory
        pass
    finally:
        os.close(fd)


# --- URIs ------------------------------------------------------------------------------------------


def __getattr__(name: str):
    if name == "S3Store":  # defined beside this module; imported lazily so boto3 loads only when needed
        from xfer.s3store import S3Store

        return S3Store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_store(uri: str) -> Store:
    """The store at `uri`: file:///abs, file://relative (to the cwd), a plain path, or s3://bucket[/prefix]."""
    if not uri or not uri.strip():
        raise XferError("store URI is empty (use a folder path, file:// or s3://)")
    if "://" not in uri:
        scheme, colon, _ = uri.partition(":")
        if colon and scheme.lower() in ("s3", "s3a", "file", "gs", "http", "https"):  # s3:/bucket, file:x
            raise XferError(f"store URI {uri!r}: malformed (use s3://bucket[/prefix], file://path or a plain path)")
        return LocalStore(uri)
    scheme, _, rest = uri.partition("://")
    if scheme == "file":
        if not rest:
            raise XferError(f"store URI {uri!r}: missing the folder path")
        return LocalStore(rest)
    if scheme == "s3":
        from xfer.s3store import S3Store

        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise XferError(f"store URI {uri!r}: missing the bucket name (use s3://bucket or s3://bucket/prefix)")
        try:
            return S3Store(bucket, prefix)
        except StoreError as exc:
            raise XferError(f"store URI {uri!r}: {exc}") from None
    raise XferError(f"store URI {uri!r}: unsupported scheme {scheme!r} (use file:// or s3://)")

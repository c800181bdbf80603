"""Store URIs and S3 endpoint URLs, checked before anything is read or written.

A store is `s3://bucket[/prefix]`, `file://PATH` (absolute `file:///abs`, or relative to the working
directory) or a plain folder path. Anything else is refused with one line naming where the URI came from:
an unknown or upper-case scheme (`gs://`, `S3://`), and the near misses that would otherwise be read as a
local folder and silently write there (`s3:/bucket/x` -> `./s3:/bucket/x`, `s3//x`, `s3:bucket`).

An S3 endpoint URL ($XFER_S3_ENDPOINT_URL) must be http(s)://host[:port][/path]. Credentials embedded in it
are refused (boto3 would not use them) and never repeated in a message: `redact` hides them.

Written by hand: `urllib.parse` splits URLs but has no opinion on which are store URIs.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

from xfer.errors import XferError

SCHEMES = ("s3", "file")
# Schemes people mean when they type one of these near misses; a plain path must not start with them.
_URI_LIKE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")  # "s3:/b", "S3:b", "gs:", "file:x": a colon in the scheme place
_KNOWN = ("s3", "s3a", "s3n", "file", "gs", "gcs", "az", "abfs", "abfss", "wasb", "wasbs", "hdfs", "http", "https",
          "ftp", "sftp", "r2", "oss", "cos", "minio")
_SLASHES = re.compile(rf"^({'|'.join(_KNOWN)})//", re.IGNORECASE)  # "s3//bucket": the colon forgotten
# S3's bucket naming rules: 3-63 characters, lower-case letters, digits, dots and hyphens, starting and ending
# with a letter or digit.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_HINT = "use s3://bucket[/prefix], file://PATH or a plain folder path"


def store_uri_problem(uri: str) -> str | None:
    """Why `uri` is not a store URI (a phrase), or None when it is one."""
    if not uri or not uri.strip():
        return f"empty ({_HINT})"
    if uri != uri.strip():
        return "leading or trailing whitespace"
    if "://" in uri:
        scheme, _, rest = uri.partition("://")
        if scheme.lower() in SCHEMES and scheme not in SCHEMES:
            return f"the scheme must be lower-case {scheme.lower() + '://'!r}"
        if scheme not in SCHEMES:
            return f"unsupported scheme {scheme!r} (use file:// or s3://)"
        if scheme == "file":
            return None if rest else "missing the folder path (file:///abs or file://relative)"
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            return "missing the bucket name (use s3://bucket or s3://bucket/prefix)"
        if not _BUCKET.match(bucket) or ".." in bucket:
            return (f"invalid S3 bucket name {bucket!r} (3-63 lower-case letters, digits, dots or hyphens, "
                    f"starting and ending with a letter or digit)")
        parts = prefix.rstrip("/").split("/") if prefix.rstrip("/") else []
        if any(part in ("", ".", "..") for part in parts) or "\\" in prefix:
            return f"invalid store prefix {prefix!r} (no empty, '.' or '..' parts)"
        return None
    if _URI_LIKE.match(uri) or _SLASHES.match(uri):
        return f"not a store URI ({_HINT})"
    return None


def check_store_uri(uri: str, source: str = "store URI") -> str:
    """`uri` unchanged when it is a store URI; else XferError, one line naming `source` (a config field,
    --store, $XFER_STORE) and the URI."""
    problem = store_uri_problem(uri)
    if problem is None:
        return uri
    if not uri or not uri.strip():
        raise XferError(f"{source} is {problem}")
    raise XferError(f"{source} {uri!r}: {problem}")


def redact(url: str) -> str:
    """`url` with everything before its last '@' (after any scheme) replaced by ***: safe to print, whatever
    characters an embedded user name or password holds."""
    head, sep, rest = url.partition("://")
    if not sep:
        head, rest = "", url
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    return head + sep + rest


def endpoint_url_problem(url: str) -> str | None:
    """Why `url` is not an S3 endpoint URL (a phrase), or None when it is one."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as exc:
        return f"not a URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return "not a URL with scheme http:// or https://" if parts.scheme else "not a URL (expected http(s)://host[:port])"
    if parts.username is not None or parts.password is not None:
        return ("contains credentials; give them as AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(or a profile) instead")
    if not parts.hostname:
        return "has no host (expected http(s)://host[:port])"
    if port == 0:
        return "port 0 is not a port"
    if parts.query or parts.fragment:
        return "has a query or fragment (expected http(s)://host[:port][/path])"
    return None


def check_endpoint_url(url: str, source: str = "$XFER_S3_ENDPOINT_URL") -> str:
    """`url` unchanged when it is an http(s) endpoint URL without credentials; else XferError, one line naming
    `source` and the URL with any credentials hidden."""
    problem = endpoint_url_problem(url)
    if problem is None:
        return url
    raise XferError(f"{source}={redact(url)!r}: {problem}")


def endpoint_from_env() -> str | None:
    """$XFER_S3_ENDPOINT_URL, checked (None when unset or empty): what `S3Store` passes to boto3."""
    url = os.environ.get("XFER_S3_ENDPOINT_URL") or None
    return check_endpoint_url(url) if url is not None else None

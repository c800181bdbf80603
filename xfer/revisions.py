"""Pinned revisions: every Hub dataset and model a plan reads, resolved to its commit sha when planning.

A task declares a moving ref (`main`, or `refs/convert/parquet` for the Hub's Parquet conversion) and a config
may name a branch or tag for its model; the plan resolves each to the commit it points at, with one Hub API
call per (repo, ref), cached for the process (`HfApi().dataset_info(repo, revision=ref).sha`, `model_info`).
The shas go into the job parameters (so an id changes when the data changes) and jobs load exactly them.

A config pins revisions itself with `revisions: {<dataset repo>: <commit sha>}` and `model.revision: <commit
sha>`: a pinned repo needs no Hub call, which is how a plan is made offline (`HF_HUB_OFFLINE=1` or no
network): an unpinned repo is then one error line naming it and the setting that pins it. Only `xfer plan
--cost`, which does not depend on job ids, plans through that with placeholders (`provisional()`).

Where the Parquet conversion branch is missing (it has been, for Cosmos QA and HellaSwag), the dataset's main
revision is used when its files there are Parquet (`list_repo_refs`, `list_repo_files`); the record says so
(`via`) and the planner logs it.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Iterable, Iterator, Literal, Mapping

from xfer.errors import TemporaryFailure, XferError

log = logging.getLogger("xfer")

SHA = re.compile(r"^[0-9a-f]{40}$")
PARQUET_REF = "refs/convert/parquet"
MAIN = "main"
Kind = Literal["dataset", "model"]


@dataclass(frozen=True)
class Revision:
    """The commit `sha` a `ref` of a Hub repo resolved to, and how (`via`)."""

    repo: str
    kind: Kind
    ref: str
    sha: str
    via: str  # "hub" | "pinned in the config" | "main: ..." (the Parquet fallback)

    def to_json(self) -> dict:
        return asdict(self)


def hub_api():
    """The Hub client (a function so tests can swap it for a stand-in)."""
    from huggingface_hub import HfApi

    return HfApi()


def offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set, read at call time."""
    return any(os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def how_to_pin(repo: str, kind: Kind) -> str:
    return ("set model.revision: <commit sha>" if kind == "model"
            else f"pin it in the config: revisions: {{{repo}: <commit sha>}}")


class Offline(XferError):
    """The Hub cannot be asked (HF_HUB_OFFLINE): pin the revision."""


_cache: dict[tuple[str, str, str], Revision] = {}
_provisional = threading.local()
UNRESOLVED = "unresolved"  # the sha of a provisional revision: never a commit, so nothing can read at it


@contextmanager
def provisional() -> Iterator[list[Revision]]:
    """Inside the block, a ref that cannot be resolved (offline, or the Hub unreachable) becomes a revision
    whose sha is `UNRESOLVED` instead of an error; the list yielded collects them. For what does not depend
    on job ids (`xfer plan --cost`); a plan made so is never run."""
    _provisional.missed = []
    try:
        yield _provisional.missed
    finally:
        del _provisional.missed


def _missed() -> list[Revision] | None:
    """The provisional revisions collected so far, or None outside `provisional()`."""
    return getattr(_provisional, "missed", None)


def _placeholder(repo: str, ref: str, kind: Kind, why: str) -> Revision | None:
    missed = _missed()
    if missed is None:
        return None
    revision = Revision(repo, kind, ref, UNRESOLVED, f"not resolved: {why}")
    missed.append(revision)
    return revision


def cache_clear() -> None:
    _cache.clear()


def resolve(repo: str, ref: str | None, kind: Kind = "dataset", pin: str | None = None) -> Revision:
    """The commit of `repo` at `ref` (default main): the pin if there is one, else one Hub call (cached)."""
    ref = ref or MAIN
    if pin:
        return Revision(repo, kind, ref, pin, "pinned in the config")
    if SHA.match(ref):
        return Revision(repo, kind, ref, ref, "pinned in the config")
    key = (kind, repo, ref)
    if key not in _cache:
        try:
            _cache[key] = _ask_hub(repo, ref, kind)
        except (TemporaryFailure, Offline) as exc:  # not a problem of the repo (not found, gated, denied)
            placeholder = _placeholder(repo, ref, kind, str(exc))
            if placeholder is None:
                raise
            return placeholder
    return _cache[key]


def _ask_hub(repo: str, ref: str, kind: Kind) -> Revision:
    from huggingface_hub import errors

    what = f"{kind} {repo}@{ref}"
    if offline():
        raise Offline(f"offline (HF_HUB_OFFLINE is set): cannot resolve {what} to a commit; "
                        f"{how_to_pin(repo, kind)}")
    api = hub_api()
    try:
        info = api.dataset_info(repo, revision=ref) if kind == "dataset" else api.model_info(repo, revision=ref)
        return Revision(repo, kind, ref, info.sha, "hub")
    except errors.RevisionNotFoundError as exc:
        if kind == "dataset" and ref == PARQUET_REF:
            return _parquet_fallback(api, repo)
        raise XferError(f"{what}: revision {ref!r} not found on the Hub") from exc
    except errors.GatedRepoError as exc:
        raise XferError(f"{what}: the repo is gated: accept its terms on the Hub and log in "
                        f"(HF_TOKEN)") from exc
    except errors.RepositoryNotFoundError as exc:
        raise XferError(f"{what}: repository not found on the Hub (or private: log in with HF_TOKEN)") from exc
    except errors.OfflineModeIsEnabled as exc:
        raise Offline(f"offline: cannot resolve {what} to a commit; {how_to_pin(repo, kind)}") from exc
    except Exception as exc:  # the network, a timeout, a 5xx, rate limiting: worth retrying, or pin it
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            raise XferError(f"{what}: access denied by the Hub ({status}): log in with HF_TOKEN") from exc
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise TemporaryFailure(f"cannot reach the Hub to resolve {what} ({type(exc).__name__}: {first}); "
                               f"to plan offline, {how_to_pin(repo, kind)}") from exc


def _parquet_fallback(api, repo: str) -> Revision:
    """No Parquet conversion branch: the main revision, when the files there are Parquet (no loading script)."""
    refs = api.list_repo_refs(repo, repo_type="dataset")
    convert = next((r for r in refs.converts if r.ref == PARQUET_REF or r.name == "parquet"), None)
    if convert is not None:  # listed after all (dataset_info raced a conversion): take it
        return Revision(repo, "dataset", PARQUET_REF, convert.target_commit, "hub")
    main = next((b for b in refs.branches if b.name == MAIN), None)
    if main is None:
        raise XferError(f"dataset {repo}: no {PARQUET_REF} branch and no main branch on the Hub; "
                        f"{how_to_pin(repo, 'dataset')}")
    files = api.list_repo_files(repo, revision=main.target_commit, repo_type="dataset")
    scripts = [f for f in files if f.endswith(".py") and "/" not in f]
    if scripts or not any(f.endswith(".parquet") for f in files):
        held = f"a loading script ({scripts[0]})" if scripts else "no Parquet files"
        raise XferError(f"dataset {repo}: no {PARQUET_REF} branch, and its main revision holds {held}; "
                        f"{how_to_pin(repo, 'dataset')} (a commit holding Parquet files)")
    via = f"main: {repo} has no {PARQUET_REF} branch; its main revision holds Parquet files"
    log.warning("dataset %s: no %s branch; reading main at %s (its files are Parquet)", repo, PARQUET_REF,
                main.target_commit[:12])
    return Revision(repo, "dataset", PARQUET_REF, main.target_commit, via)


def resolve_datasets(refs: Mapping[str, Iterable[str | None]], pins: Mapping[str, str]) -> list[Revision]:
    """Every (repo, ref) a plan reads, resolved; `pins` (the config's `revisions`) override per repo. Offline,
    all unpinned repos are named in one line."""
    unknown = sorted(set(pins) - set(refs))
    if unknown:
        raise XferError(f"config field revisions: {unknown[0]!r} is not a dataset this sweep reads "
                        f"(it reads: {', '.join(sorted(refs))})")
    wanted = [(repo, ref or MAIN) for repo in sorted(refs) for ref in sorted({r or MAIN for r in refs[repo]})]
    unpinned = [repo for repo, _ in wanted if repo not in pins]
    if unpinned and offline() and _missed() is None:
        names = ", ".join(dict.fromkeys(unpinned))
        raise XferError(f"offline (HF_HUB_OFFLINE is set): cannot resolve dataset revisions of {names}; pin them "
                        f"in the config: revisions: {{{unpinned[0]}: <commit sha>, ...}}")
    return [resolve(repo, ref, "dataset", pins.get(repo)) for repo, ref in wanted]

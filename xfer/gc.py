"""`xfer gc CONFIG... [--dry-run]`: remove from the store what none of the given sweeps references.

Removed (each listed with its reason; `--dry-run` only lists):
- `jobs/<id>/` of every job id that is in none of the given plans (unless a live lease says it is running);
- `jobs/<id>/checkpoints/` of a job whose output is committed (the job finished; jobs normally do this);
- commit leftovers: S3 attempts other than the one the marker names, candidates other than the winner's,
  and local temporary files and staging folders (`.xfer-tmp-*`) of interrupted writes;
- expired leases (`leases/<id>.json` older than their ttl);
- older reports of the given sweeps (`reports/<name>/<id>/` of another aggregate id than the plan's).

Leftovers younger than `--grace` seconds (default 3600) are kept: they may belong to a write in progress.
Never removed: `quarantine/` (damaged outputs kept for inspection; delete them by hand), `configs/`, and
anything outside the layout above. Every given config must use the same store (or pass --store).
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from xfer.errors import XferError

log = logging.getLogger(__name__)

GRACE_SECONDS = 3600.0


@dataclass
class Removal:
    what: str  # a key folder ending in '/', a key, or a local path
    why: str
    keys: list[str] = field(default_factory=list)  # the keys to delete ([] for a folder or local path)
    folder: bool = False
    local_path: Path | None = None

    def apply(self, store) -> None:
        if self.local_path is not None:
            if self.local_path.is_dir():
                shutil.rmtree(self.local_path, ignore_errors=True)
            else:
                self.local_path.unlink(missing_ok=True)
        elif self.folder:
            store.delete_prefix(self.what.rstrip("/"))
        else:
            store._delete_keys(self.keys)


def find(store, job_ids: set[str], reports: dict[str, set[str]], grace: float) -> tuple[list[Removal], int]:
    """What to remove from `store` given the referenced job ids and {sweep name: aggregate ids}; also the
    number of quarantined outputs kept."""
    from xfer import lease
    from xfer.store import ATTEMPTS, CANDIDATES, LocalStore, QUARANTINE

    ages = store.ages("")
    removals: list[Removal] = []
    jobs: dict[str, list[str]] = {}
    commits: dict[str, dict[str, dict[str, list[str]]]] = {}  # prefix -> {"attempts"/"candidates": {name: keys}}
    for key in ages:
        parts = key.split("/")
        if parts[0] == "jobs" and len(parts) > 2:
            jobs.setdefault(parts[1], []).append(key)
        for marker, kind in ((ATTEMPTS, "attempts"), (CANDIDATES, "candidates")):
            if marker in parts[:-1]:
                i = parts.index(marker)
                prefix = "/".join(parts[:i])
                commits.setdefault(prefix, {"attempts": {}, "candidates": {}})[kind].setdefault(parts[i + 1], []).append(key)

    def old(keys: list[str]) -> bool:
        return all(ages.get(k, 0.0) >= grace for k in keys)

    for job_id, keys in sorted(jobs.items()):
        if job_id in job_ids:
            if keys and store.is_committed(f"jobs/{job_id}/output"):
                checkpoints = [k for k in keys if k.startswith(f"jobs/{job_id}/checkpoints/")]
                if checkpoints:
                    removals.append(Removal(f"jobs/{job_id}/checkpoints/", "checkpoints of a finished job",
                                            checkpoints, folder=True))
            continue
        held = lease.read(store, job_id)
        if held is not None and lease.is_live(*held):
            log.info("kept jobs/%s/: not in the given plans, but running (%s holds its lease)", job_id,
                     held[0].get("owner", "?"))
            continue
        removals.append(Removal(f"jobs/{job_id}/", "not in any given plan", keys, folder=True))
    gone = tuple(r.what for r in removals if r.folder)

    for prefix, found in sorted(commits.items()):
        if prefix.startswith(gone) or prefix.startswith(f"{QUARANTINE}/"):
            continue
        committed = store._resolve(prefix)
        winner = committed.attempt if committed is not None else None
        for name, keys in sorted(found["attempts"].items()):
            if name != winner and old(keys):
                removals.append(Removal(f"{prefix}/{ATTEMPTS}/{name}/", "orphaned commit attempt", keys))
        for name, keys in sorted(found["candidates"].items()):
            if name != winner and old(keys):
                removals.append(Removal(f"{prefix}/{CANDIDATES}/{name}", "stale commit candidate", keys))

    for key, age in sorted(ages.items()):
        if key.startswith(f"{lease.LEASES}/") and key.endswith(".json"):
            job_id = key[len(lease.LEASES) + 1:-len(".json")]
            held = lease.read(store, job_id)
            if held is None or not lease.is_live(*held):
                removals.append(Removal(key, "expired lease", [key]))

    for name, keep in sorted(reports.items()):
        for key in ages:
            parts = key.split("/")
            if len(parts) > 3 and parts[:2] == ["reports", name] and parts[2] not in keep:
                folder = f"reports/{name}/{parts[2]}/"
                if not any(r.what == folder for r in removals):
                    removals.append(Removal(folder, f"an older report of sweep {name!r}", [], folder=True))

    if isinstance(store, LocalStore):
        import time

        for path in store.scratch():
            try:
                age = time.time() - path.stat().st_mtime
            except FileNotFoundError:
                continue
            if age >= grace:
                removals.append(Removal(path.relative_to(store.root).as_posix(),
                                        "temporary files of an interrupted write", local_path=path))
    quarantined = sum(k.startswith(f"{QUARANTINE}/") and k.endswith("/_COMPLETE") for k in ages)
    return removals, quarantined


def cmd_gc(args) -> int:
    from xfer import config as configs
    from xfer.plan import build_plan
    from xfer.store import open_store

    job_ids: set[str] = set()
    reports: dict[str, set[str]] = {}
    uris = set()
    for ref in args.configs:
        config, sha = configs.load(ref)
        plan = build_plan(config, sha)
        job_ids.update(job.id for job in plan.jobs)
        reports.setdefault(plan.name, set()).update(job.id for job in plan.stage("aggregate"))
        uris.add(args.store or os.environ.get("XFER_STORE") or config.store)
    if len(uris) > 1:
        raise XferError(f"the given configs use different stores ({', '.join(sorted(uris))}): pass --store")
    store = open_store(uris.pop())
    removals, quarantined = find(store, job_ids, reports, args.grace)
    verb = "would remove" if args.dry_run else "removed"
    for removal in removals:
        if not args.dry_run:
            removal.apply(store)
        files = f", {len(removal.keys)} files" if len(removal.keys) > 1 else ""
        print(f"{verb}: {removal.what}  ({removal.why}{files})")
    print(f"gc: {len(removals)} item(s) {verb} from {store.uri}" + (" (dry run)" if args.dry_run else ""))
    if quarantined:
        print(f"gc: kept {quarantined} quarantined output(s) under {store.uri}/quarantine/ (never removed; "
              "delete them by hand once inspected)")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("gc", help="remove from the store what none of the given sweeps references",
                       description="Remove from the store what none of the given sweeps references (see "
                                   "docs/reliability.md).")
    p.add_argument("configs", nargs="+", metavar="CONFIG", help="sweep configs whose jobs are kept")
    p.add_argument("--store", help="store URI (overrides the configs and $XFER_STORE)")
    p.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    p.add_argument("--grace", type=float, default=GRACE_SECONDS, metavar="SECONDS",
                   help=f"keep leftovers younger than this (default {GRACE_SECONDS:g}): a write may be in progress")
    p.set_defaults(func=cmd_gc)

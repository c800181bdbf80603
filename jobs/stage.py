"""The stage job (`xfer stage CONFIG`): copy what a sweep reads from the Hugging Face Hub into the store, once.

Every dataset split the plan reads is loaded with `datasets.load_dataset` (the call xfer/data.py makes for the
Hub) and committed whole as Parquet; every pretrained model is downloaded with `snapshot_download` (the call
xfer/model.py makes) and committed as huggingface_hub's cache entry. Layout and keys: xfer/staging.py. What is
committed already is left alone, so the job is cheap to rerun and the plan step runs it only when something is
missing. An HF_TOKEN in the environment (optional) is used by huggingface_hub itself and never printed.

A Hub that stays unreachable after huggingface_hub's own retries is a TemporaryFailure (exit 75: the workflow
retries the pod); a missing or gated dataset or model is an XferError (exit 2: fix the config or the token).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from xfer import staging
from xfer.errors import TemporaryFailure, XferError

TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


def _hub_failure(what: str, exc: Exception) -> Exception:
    """TemporaryFailure for a Hub that is down, slow or rate-limiting; XferError for everything else."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    names = {cls.__name__ for cls in type(exc).__mro__}
    transient = status in TRANSIENT_STATUS or bool(names & {"ConnectError", "ConnectionError", "TimeoutException",
                                                           "Timeout", "ReadTimeout", "ConnectTimeout"})
    first = str(exc).splitlines()[0] if str(exc) else ""
    message = f"cannot stage {what} from the Hub: {type(exc).__name__}: {first}"
    return TemporaryFailure(message) if transient else XferError(message)


def stage_split(item: staging.HubSplit, store, work: Path) -> None:
    """Commit the split as Parquet; a split the dataset does not have (datasets raises ValueError: unknown
    split or config, e.g. UD-POS Yoruba has no validation split) is committed as absent, with the reason, so
    that a job reading it fails as it would against the Hub (optional reads, such as oracle dev sets, go on)."""
    import datasets

    datasets.disable_progress_bars()
    out = work / item.prefix
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    meta = {"dataset": item.dataset, "config": item.config, "split": item.split, "revision": item.revision}
    try:
        ds = datasets.load_dataset(item.dataset, item.config, split=item.split, revision=item.revision)
    except ValueError as exc:
        reason = f"{item} is not on the Hub: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        (out / staging.ABSENT).write_text(json.dumps({"reason": reason}))
        store.commit(item.prefix, out, meta={**meta, "absent": True})
        return
    except Exception as exc:  # the Hub client raises many types
        raise _hub_failure(str(item), exc) from exc
    path = out / item.relpath
    path.parent.mkdir(parents=True)
    ds.to_parquet(str(path))
    store.commit(item.prefix, out, meta={**meta, "rows": len(ds)})


def stage_model(item: staging.HubModel, store, work: Path) -> None:
    from huggingface_hub import snapshot_download

    from xfer.model import WEIGHT_PATTERNS

    cache_dir = work / "hf-hub"
    try:
        snapshot_download(item.name, revision=item.revision, allow_patterns=WEIGHT_PATTERNS, cache_dir=cache_dir)
    except Exception as exc:
        raise _hub_failure(f"model {item}", exc) from exc
    # The cache entry without blobs/: the snapshot's files are symlinks into it; hard links to their targets
    # make each file one plain file (uploaded once) where snapshot_download looks for it.
    entry, out = cache_dir / item.cache_folder, work / item.prefix
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(entry, out / item.cache_folder, copy_function=lambda src, dst: os.link(os.path.realpath(src), dst),
                    ignore=lambda folder, names: ["blobs"] if Path(folder) == entry else [])
    store.commit(item.prefix, out, meta={"model": item.name, "revision": item.revision})


def run(cfg, store, work: Path) -> list[str]:
    """Stage what is missing; returns what was staged now (as text, for the log)."""
    done = []
    for item in staging.missing(cfg, store):
        if isinstance(item, staging.HubSplit):
            stage_split(item, store, work)
        else:
            stage_model(item, store, work)
        done.append(str(item))
    return done


# --- the command --------------------------------------------------------------------------------------


def add_commands(subparsers) -> None:
    """Register `xfer stage` on the `xfer` argument parser."""
    p = subparsers.add_parser("stage", help="copy the Hub data and models a sweep reads into the store, once")
    p.add_argument("config", help="sweep config: a YAML path or a store URI")
    p.add_argument("--store", help="store URI (overrides the config and $XFER_STORE)")
    p.add_argument("--work", default=os.environ.get("XFER_WORK", ".xfer/work"), help="local scratch folder")
    p.set_defaults(func=cmd_stage)


def cmd_stage(args) -> int:
    from xfer import config as configs
    from xfer.store import open_store

    config, _ = configs.load(args.config)
    store = open_store(args.store or os.environ.get("XFER_STORE") or config.store)
    staged = run(config, store, Path(args.work))
    print(json.dumps({"store": store.uri, "staged": staged}))
    return 0

"""Hub inputs staged in the store: each dataset split a plan reads and each pretrained model, copied once.

On a cluster only the stage job (`xfer stage CONFIG`, jobs/stage.py) talks to the Hugging Face Hub; every other
pod runs with HF_HUB_OFFLINE=1 and reads what it stages from the store, so hundreds of pods never meet the Hub's
per-IP rate limits and all of them read the same bytes. Each item is a committed prefix (xfer/store.py):

    staged/data/<key>/<dataset id>/<config>/<split>.parquet     one whole Hub split (jobs filter it per language),
                     or absent.json                              for a split the dataset does not have
    staged/models/<key>/models--<org>--<name>/...                 huggingface_hub's own cache entry of the snapshot

`<key>` is a hash of the coordinates (dataset, config, split, revision; or model id, revision), so sweeps that
read the same split share one copy. A job's data fingerprint (its id) still names the Hub coordinates: staging
changes where the bytes come from, never what they are said to be.

- `attach` makes a Hub DataSource read a staged split through the local-mirror code path: the prefix is fetched
  into the pod's cache on first use, so the folder it lands in is a mirror in the Hub layout;
- `fetch_model` puts a staged model snapshot into the Hugging Face cache, where `snapshot_download` (offline)
  finds it;
- `inputs` lists what a config reads from the Hub (the plan fingerprints every split it reads, without
  network), `missing` what of it is not staged yet.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from xfer.errors import XferError
from xfer.store import Store

STAGED = "staged"
ABSENT = "absent.json"  # a staged split the Hub does not have: {"reason": ...} instead of the Parquet file


def _key(*coordinates) -> str:
    return hashlib.sha256(json.dumps(coordinates).encode()).hexdigest()[:16]


@dataclass(frozen=True, order=True)
class HubSplit:
    dataset: str
    config: str
    split: str
    revision: str | None = None

    @property
    def prefix(self) -> str:
        return f"{STAGED}/data/{_key(self.dataset, self.config, self.split, self.revision or 'main')}"

    @property
    def relpath(self) -> str:
        """Where the split lies inside the prefix: the layout a local data mirror has (xfer/data.py)."""
        return f"{self.dataset}/{self.config}/{self.split}.parquet"

    def __str__(self) -> str:
        return f"{self.dataset} {self.config} {self.split}@{self.revision or 'main'}"


@dataclass(frozen=True, order=True)
class HubModel:
    name: str
    revision: str | None = None

    @property
    def prefix(self) -> str:
        return f"{STAGED}/models/{_key(self.name, self.revision or 'main')}"

    @property
    def cache_folder(self) -> str:
        """huggingface_hub's folder name for the repository in its cache."""
        return "models--" + self.name.replace("/", "--")

    def __str__(self) -> str:
        return f"{self.name}@{self.revision or 'main'}"


def inputs(cfg) -> tuple[list[HubSplit], list[HubModel]]:
    """Every Hub split the plan of `cfg` reads and every Hub model it starts from (nothing for local data)."""
    from xfer.data import DataSource
    from xfer.plan import build_plan

    data = DataSource(cfg.data, files=cfg.intermediate.files)
    plan = build_plan(cfg, data=data)
    splits = sorted(HubSplit(*read) for read in data.hub_reads)
    models = sorted({HubModel(p["model"]["hub"], p["model"].get("revision")) for p in (j.params for j in plan.jobs)
                     if "hub" in p.get("model", {})})
    return splits, models


def missing(cfg, store: Store) -> list[HubSplit | HubModel]:
    """What `cfg` reads from the Hub and the store does not hold yet."""
    splits, models = inputs(cfg)
    return [item for item in [*splits, *models] if not store.is_committed(item.prefix)]


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def attach(data, store: Store, cache_dir: Path):
    """Make a Hub DataSource read staged splits from `store` (fetched into `cache_dir`); returns it. Local
    and bundled data sources are returned unchanged. Offline (HF_HUB_OFFLINE=1), a split that is not staged
    is an error naming it, instead of a failed Hub call."""
    if data.root is not None:
        return data

    @cache
    def locate(dataset: str, config: str, split: str, revision: str | None) -> Path | None:
        item = HubSplit(dataset, config, split, revision)
        if not store.is_committed(item.prefix):
            if _offline():
                raise XferError(f"{item} is not staged in the store ({store.uri.rstrip('/')}/{item.prefix}) and "
                                "this pod may not reach the Hub (HF_HUB_OFFLINE=1): run `xfer stage CONFIG`")
            return None
        local = cache_dir / item.prefix
        store.fetch(item.prefix, local)  # verified against the manifest; kept files are not fetched again
        if (local / ABSENT).is_file():
            raise XferError(json.loads((local / ABSENT).read_text())["reason"])
        return local / item.relpath

    data.staged = locate
    return data


def fetch_model(ref: dict | None, store: Store, hub_cache: Path | None = None) -> Path | None:
    """Put the staged snapshot of a Hub model reference ({"hub": id, "revision": r}) into the Hugging Face
    cache (HF_HUB_CACHE), where an offline `snapshot_download` finds it. None when `ref` is not a Hub model
    or it is not staged (offline, the later Hub call then fails, naming the model)."""
    if not ref or "hub" not in ref:
        return None
    model = HubModel(ref["hub"], ref.get("revision"))
    if not store.is_committed(model.prefix):
        return None
    if hub_cache is None:
        from huggingface_hub import constants

        hub_cache = Path(constants.HF_HUB_CACHE)
    store.fetch(model.prefix, hub_cache)
    return hub_cache / model.cache_folder


def prepare(job, ctx) -> None:
    """Before a job runs in a pod: its pretrained model, when staged, into the pod's Hugging Face cache."""
    fetch_model(job.params.get("model"), ctx.store)

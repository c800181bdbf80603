"""Pinned configs: a sweep config with every Hub dataset and model it reads pinned to the commit its ref
points at now (`revisions:` and `model.revision`, xfer/revisions.py).

`xfer config push` and `xfer submit` put this pinned text into the store, not the file as written, when the
config reads the Hub (`data: hub` or a Hub model id): cluster pods run offline (`HF_HUB_OFFLINE=1`, they read
only the store) and re-plan the sweep to find their job, which needs no Hub call once every ref is pinned; and
every pod of one run plans against the same commits even if the Hub moves meanwhile. Pushing the same file
again resolves again: new data gives a new pinned config, new job ids, and recomputes only what it touches.
A config without Hub inputs is pushed byte for byte.
"""

from __future__ import annotations

import hashlib

import yaml

from xfer.config import SweepConfig, parse


def reads_the_hub(cfg: SweepConfig) -> bool:
    from pathlib import Path

    hub_model = cfg.model.name is not None and not Path(cfg.model.name).expanduser().is_dir()
    return cfg.data == "hub" or hub_model


def pinned(text: str, cfg: SweepConfig, source: str) -> str:
    """The config text with its Hub refs pinned (`text` itself when it reads nothing from the Hub)."""
    if not reads_the_hub(cfg):
        return text
    from xfer.plan import build_plan

    plan = build_plan(cfg)
    raw = yaml.safe_load(text)
    datasets = {r.repo: r.sha for r in plan.revisions if r.kind == "dataset"}
    if datasets:
        raw["revisions"] = {**(raw.get("revisions") or {}), **datasets}
    model = next((r for r in plan.revisions if r.kind == "model"), None)
    if model is not None:
        raw["model"] = {**raw["model"], "revision": model.sha}
    header = (f"# {source} (sha256 {hashlib.sha256(text.encode()).hexdigest()[:16]}), its Hub refs pinned by "
              "xfer to the commits they pointed at (xfer/pin.py)\n")
    out = header + yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)
    parse(out, source)  # still a valid config
    return out


def push_key(path: str, cfg: SweepConfig) -> tuple[str, bytes]:
    """(store key, bytes) of a local config as `xfer config push` and `xfer submit` put it into the store:
    `configs/<sha256 of the bytes>.yaml`, the file itself or, when it reads the Hub, pinned."""
    from pathlib import Path

    text = pinned(Path(path).read_text(encoding="utf-8"), cfg, path).encode("utf-8")
    return f"configs/{hashlib.sha256(text).hexdigest()}.yaml", text

"""Job checkpoints in the store: commit one, resume from the newest that verifies, remove them when done.

A checkpoint of job J at step s is the committed prefix `jobs/J/checkpoints/step-<s, 8 digits>`: the model
and optimizer state (safetensors), `state.json` (the step, the recent step losses and whatever the job needs
to go on: a target job's evaluation history) and any extra files the job adds (a target job's candidate
snapshots). The newest `KEEP` checkpoints are kept. Resuming takes the newest committed checkpoint whose
files verify against its manifest; one that does not is set aside (`Store.quarantine` where the store has
it) with one log line, and the one before it is tried, then step 0. Nothing from the store is unpickled.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from xfer.errors import StoreError
from xfer.train import optimizer_tensors

log = logging.getLogger("xfer")

KEEP = 2  # committed checkpoints kept per job: the newest, and one to fall back to
STEP_DIR = re.compile(r"step-(\d{8})$")


@dataclass
class Resumed:
    """What a job resumes from: the step, the optimizer state, the job's own state and the fetched folder."""

    step: int = 0
    optimizer: dict[str, torch.Tensor] | None = None
    state: dict = field(default_factory=dict)
    folder: Path | None = None

    @property
    def recent_losses(self) -> list[float]:
        return list(self.state.get("recent_losses", []))


class Checkpoints:
    """The checkpoints of one job, staged in `work` (a local scratch folder of the job)."""

    def __init__(self, store, job_id: str, work: Path):
        self.store, self.job_id, self.work = store, job_id, Path(work)
        self.root = f"jobs/{job_id}/checkpoints"

    def prefix(self, step: int) -> str:
        return f"{self.root}/step-{step:08d}"

    def committed(self) -> list[int]:
        """Steps of the committed checkpoints, newest first."""
        steps = set()
        for key in self.store.list(self.root + "/"):
            parts = key.split("/")
            match = STEP_DIR.match(parts[-2]) if len(parts) >= 2 else None
            if match:
                steps.add(int(match.group(1)))
        return [s for s in sorted(steps, reverse=True) if self.store.is_committed(self.prefix(s))]

    def resume(self, model: torch.nn.Module) -> Resumed:
        """Load the newest checkpoint that verifies into `model`; Resumed() (step 0) when there is none."""
        for step in self.committed():
            folder = self.work / f"resume-{step:08d}"
            shutil.rmtree(folder, ignore_errors=True)
            try:
                self.store.fetch(self.prefix(step), folder)
                state = json.loads((folder / "state.json").read_text())
                load_model(model, folder / "model.safetensors")
                optimizer = load_file(folder / "optimizer.safetensors")
            except (StoreError, OSError, ValueError, RuntimeError, KeyError) as exc:
                self._set_aside(step, f"{type(exc).__name__}: {exc}")
                shutil.rmtree(folder, ignore_errors=True)
                continue
            log.info("%s: resuming from committed checkpoint at step %d", self.job_id, step)
            return Resumed(step, optimizer, state, folder)
        return Resumed()

    def _set_aside(self, step: int, reason: str) -> None:
        prefix = self.prefix(step)
        log.warning("%s: checkpoint at step %d is unusable (%s); trying an older one", self.job_id, step,
                    " ".join(reason.split())[:300])
        quarantine = getattr(self.store, "quarantine", None)
        if quarantine is not None:
            quarantine(prefix, reason)
        else:  # a store without quarantine: stop trusting it, keep nothing half-valid
            self.store.uncommit(prefix)

    def commit(self, step: int, model: torch.nn.Module, opt: torch.optim.Optimizer | None, state: dict,
               extra: dict[str, Path] | None = None) -> None:
        """Commit a checkpoint at `step` (the model, the optimizer, `state` and `extra` {name: local file}),
        then drop all but the newest `KEEP`."""
        folder = self.work / f"step-{step:08d}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        save_model(model, folder / "model.safetensors")
        save_file(optimizer_tensors(opt) if opt is not None else {}, folder / "optimizer.safetensors")
        (folder / "state.json").write_text(json.dumps({**state, "step": step, "job": self.job_id}))
        for name, path in (extra or {}).items():
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                target.hardlink_to(path)
            except OSError:
                shutil.copyfile(path, target)
        self.store.commit(self.prefix(step), folder, meta={"job": self.job_id, "step": step})
        shutil.rmtree(folder, ignore_errors=True)
        for old in self.committed()[KEEP:]:
            self.store.uncommit(self.prefix(old))

    def clear(self) -> None:
        """Remove every checkpoint of the job (once its output is committed)."""
        for step in self.committed():
            self.store.uncommit(self.prefix(step))
        if hasattr(self.store, "delete_prefix"):
            self.store.delete_prefix(self.root)


def save_weights(model: torch.nn.Module, path: Path) -> None:
    """A model's weights as one safetensors file (a target job's candidate snapshot)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, path)


def load_weights(model: torch.nn.Module, path: Path) -> None:
    load_model(model, path)


class Snapshots:
    """Model weights of evaluation points a selection may still choose, on local disk (`folder`), one
    safetensors file per step; carried inside the job's checkpoints (`files()`), restored from one with
    `restore`."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, step: int) -> Path:
        return self.folder / f"step-{step:08d}.safetensors"

    def steps(self) -> list[int]:
        return sorted(int(p.stem.split("-")[1]) for p in self.folder.glob("step-*.safetensors"))

    def keep(self, step: int, model: torch.nn.Module) -> None:
        if not self.path(step).is_file():
            save_weights(model, self.path(step))

    def prune(self, needed: set[int]) -> None:
        for step in self.steps():
            if step not in needed:
                self.path(step).unlink()

    def load(self, step: int, model: torch.nn.Module) -> None:
        load_weights(model, self.path(step))

    def files(self) -> dict[str, Path]:
        """{name in a checkpoint: local file} of every kept snapshot."""
        return {f"snapshots/{self.path(s).name}": self.path(s) for s in self.steps()}

    def restore(self, resumed: Resumed) -> None:
        """Take the snapshots a resumed checkpoint carried."""
        if resumed.folder is None:
            return
        for path in sorted((resumed.folder / "snapshots").glob("step-*.safetensors")):
            shutil.copyfile(path, self.folder / path.name)

"""What a running job is given: the config, the plan, the store, the data source, a scratch folder."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from xfer.config import SweepConfig
from xfer.data import DataSource
from xfer.plan import Plan
from xfer.store import Store

log = logging.getLogger("xfer")


@dataclass
class JobContext:
    config: SweepConfig
    plan: Plan
    store: Store
    work: Path  # local scratch and model cache
    report_dir: Path | None = None  # where `aggregate` writes the report locally
    on_progress: Callable[[int, int], None] | None = None  # (steps done, steps total) of the job's training
    repair_inputs: bool = False  # a corrupt input raises CorruptOutput (the runner recomputes its producer)
    _data: DataSource | None = field(default=None, repr=False)

    @property
    def data(self) -> DataSource:
        if self._data is None:  # Hub splits staged in the store are read from there (xfer/staging.py)
            from xfer import staging

            self._data = staging.attach(DataSource(self.config.data, files=self.config.intermediate.files),
                                        self.store, self.work / "staged")
        return self._data

    @property
    def device(self):
        from xfer.model import device

        return device(self.config.device)

    @property
    def cache(self) -> Path:
        return self.work / "models"

    def progress(self, done: int, total: int) -> None:
        if self.on_progress:
            self.on_progress(done, total)

"""Counting token positions at the encoder's forward: the real ones (attention mask 1) and all computed ones
(padding included), for training (the model in train mode) and inference (eval mode) separately.

`TokenCounts.watching(model)` hooks the model's encoder (`model.base_model`: the module every head and a
multi-task model run) for the duration of a block. The real count is accumulated on the model's device, so
counting never waits for the accelerator; `as_dict()` reads it (one sync). Jobs record the totals in their
output (`tokens`: {"train"|"inference": {"real", "computed"}}), which is how the padding efficiency of a whole
sweep is measured: real / computed.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

PARTS = ("train", "inference")


def _encoder(model: torch.nn.Module) -> torch.nn.Module:
    encoder = getattr(model, "base_model", None)  # HF heads and `xfer.multitask.MultiTaskModel` have one
    return encoder if isinstance(encoder, torch.nn.Module) else model


class TokenCounts:
    """Running totals per part; `initial` continues the totals of an earlier attempt (a resumed job)."""

    def __init__(self, initial: dict | None = None):
        self._computed = {part: int((initial or {}).get(part, {}).get("computed", 0)) for part in PARTS}
        self._real: dict[str, int | torch.Tensor] = {
            part: int((initial or {}).get(part, {}).get("real", 0)) for part in PARTS}

    def _hook(self, module, args, kwargs) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            embeds = kwargs.get("inputs_embeds")
            if embeds is None:
                return
            ids = embeds[..., 0]
        part = "train" if module.training else "inference"
        mask = kwargs.get("attention_mask")
        self._computed[part] += ids.numel()
        self._real[part] = self._real[part] + (mask.sum() if mask is not None else ids.numel())

    @contextmanager
    def watching(self, model: torch.nn.Module) -> Iterator[TokenCounts]:
        handle = _encoder(model).register_forward_pre_hook(self._hook, with_kwargs=True)
        try:
            yield self
        finally:
            handle.remove()

    def as_dict(self) -> dict:
        """{part: {"real", "computed"}} so far, as plain integers."""
        return {part: {"real": int(self._real[part]), "computed": self._computed[part]} for part in PARTS}


def efficiency(counts: dict) -> dict[str, float | None]:
    """real / computed per part (None for a part that computed nothing)."""
    return {part: (entry["real"] / entry["computed"] if entry["computed"] else None)
            for part, entry in counts.items()}

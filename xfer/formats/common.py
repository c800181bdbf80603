"""Pieces the formats share: batched inference and label-column decoding."""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import torch

from xfer.errors import XferError


@torch.inference_mode()
def predict(model: torch.nn.Module, features: Sequence[dict], collate: Callable[[list], dict],
            batch_size: int, device: torch.device) -> Iterator:
    """Model outputs for `features` in order, one batch at a time (eval mode, bf16 on CUDA)."""
    model.to(device).eval()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast(
        "cpu", enabled=False)
    for start in range(0, len(features), batch_size):
        rows = [features[i] for i in range(start, min(start + batch_size, len(features)))]
        batch = {k: v.to(device) for k, v in collate(rows).items() if k != "labels"}
        with autocast:
            yield model(**batch)


def label_ids(task, split, values: Sequence) -> list[int]:
    """Hub label values to indices into `task.labels` (-1 = no gold label, as in GLUE/SNLI test sets)."""
    out = []
    for value in values:
        if split.labels_are == "name":
            if value not in task.labels:
                raise XferError(f"{split.dataset} {split.split}: label {value!r} is not one of {task.labels}")
            out.append(task.labels.index(value))
        else:
            index = int(value)
            if index >= len(split.label_names or task.labels):
                raise XferError(f"{split.dataset} {split.split}: label {value!r} out of range for {task.name}")
            if split.label_names and index >= 0:  # the source's own label order: map by name
                name = split.label_names[index]
                if name not in task.labels:
                    raise XferError(f"{split.dataset} {split.split}: label {name!r} is not one of {task.labels}")
                index = task.labels.index(name)
            out.append(index)
    return out

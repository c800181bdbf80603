"""Pieces the formats share: padding features into batches, length-sorted inference, label-column decoding.

Features are dicts of token-id lists (`input_ids`; a multiple-choice feature holds one list per choice) plus
labels; `collate` pads them into tensors and derives the attention mask from the lengths. `infer` runs a model
over features in length-sorted batches of at most a token budget (`xfer.batching.inference_batches`) and
returns every example's outputs in the original order, so predictions do not depend on the batching.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from xfer import batching
from xfer.errors import XferError

IGNORE = -100  # label of a position that is not scored (HF's ignore_index)


class Features(list):
    """Training features, and what preparing them found (`notes`, e.g. QA answers repaired or dropped), which
    jobs record beside their results."""

    def __init__(self, items=(), notes: dict | None = None):
        super().__init__(items)
        self.notes = dict(notes or {})
PAD_VALUES = {"labels": IGNORE, "attention_mask": 0, "token_type_ids": 0}


def collate(pad_id: int, label_pad: int = IGNORE) -> Callable[[list[dict]], dict]:
    """Pad a list of features into a batch of tensors: sequences to the batch's longest (multiple choice:
    every choice to the longest choice), `attention_mask` from the lengths, scalars stacked."""

    def pad(rows: list[dict]) -> dict:
        batch = {}
        for key in rows[0]:
            values = [row[key] for row in rows]
            if not isinstance(values[0], (list, tuple, np.ndarray)):
                batch[key] = torch.tensor(values)
                continue
            fill = pad_id if key == "input_ids" else (label_pad if key == "labels" else PAD_VALUES.get(key, 0))
            nested = len(values[0]) and isinstance(values[0][0], (list, tuple, np.ndarray))
            seqs = [s for v in values for s in v] if nested else values
            width = max(len(s) for s in seqs)
            out = np.full((len(seqs), width), fill, dtype=np.int64)
            for i, s in enumerate(seqs):
                out[i, :len(s)] = s
            if key == "input_ids":
                mask = np.zeros((len(seqs), width), dtype=np.int64)
                for i, s in enumerate(seqs):
                    mask[i, :len(s)] = 1
                batch["attention_mask"] = torch.from_numpy(
                    mask.reshape(len(values), -1, width) if nested else mask)
            batch[key] = torch.from_numpy(out.reshape(len(values), -1, width) if nested else out)
        return batch

    return pad


def token_budget(hp) -> int:
    """Padded token positions per inference batch: `eval_tokens`, else `eval_batch_size` rows of `max_length`."""
    return getattr(hp, "eval_tokens", None) or hp.eval_batch_size * hp.max_length


def autocast(device: torch.device):
    """bf16 autocast on CUDA; full precision elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


@torch.inference_mode()
def infer(model: torch.nn.Module, features: Sequence[dict], pad: Callable[[list[dict]], dict], max_tokens: int,
          device: torch.device, forward: Callable[[torch.nn.Module, dict], dict[str, torch.Tensor]],
          per_token: Sequence[str] = ()) -> dict[str, list[np.ndarray]]:
    """`forward(model, batch)`'s outputs ({name: tensor with the batch first}) for every feature, in the order
    of `features`: one float32 array per feature and output; outputs named in `per_token` are cut to the
    feature's own width (no padding positions). Runs in eval mode, in length-sorted token-budget batches."""
    from xfer import preemption

    model.to(device).eval()
    out: dict[str, list] = {}
    shapes = [batching.token_shape(f) for f in features]
    for batch_rows in batching.inference_batches(shapes, max_tokens):
        preemption.check("during evaluation")
        batch = {k: v.to(device, non_blocking=True) for k, v in pad([features[i] for i in batch_rows]).items()}
        with autocast(device):
            results = forward(model, batch)
        for name, tensor in results.items():
            values = tensor.float().cpu().numpy()
            slot = out.setdefault(name, [None] * len(features))
            for j, i in enumerate(batch_rows):
                slot[i] = values[j, :shapes[i][1]] if name in per_token else values[j]
    return out


def logits(model: torch.nn.Module, batch: dict) -> dict[str, torch.Tensor]:
    """The `forward` of `infer` for heads whose output is `logits`."""
    return {"logits": model(**batch).logits}


def label_ids(task, split, values: Sequence) -> list[int]:
    """Hub label values to indices into `task.labels` (-1 = no gold label, as in GLUE/SNLI test sets).
    An index label must be an integer (or a string of digits) in range; anything else names its row."""
    out = []
    names = split.label_names or task.labels
    for row, value in enumerate(values):
        where = f"{split.dataset} {split.config} {split.split} row {row}"
        if split.labels_are == "name":
            if value not in task.labels:
                raise XferError(f"{where}: label {value!r} is not one of {task.labels}")
            out.append(task.labels.index(value))
            continue
        if isinstance(value, (bool, np.bool_)) or not (
                isinstance(value, (int, np.integer)) or (isinstance(value, str) and value.lstrip("-").isdigit())):
            raise XferError(f"{where}: label {value!r} is not an integer label index")
        index = int(value)
        if index < -1 or index >= len(names):
            raise XferError(f"{where}: label {value!r} out of range for {task.name} (0..{len(names) - 1}, "
                            f"or -1 for no gold label)")
        if split.label_names and index >= 0:  # the source's own label order: map by name
            name = split.label_names[index]
            if name not in task.labels:
                raise XferError(f"{where}: label {name!r} is not one of {task.labels}")
            index = task.labels.index(name)
        out.append(index)
    return out

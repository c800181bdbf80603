"""Sentence retrieval (Tatoeba): no training; sentences are embedded by mean-pooling one hidden layer of the
encoder (special tokens included, as jiant and XTREME do), and each source sentence retrieves its nearest
English sentence by cosine similarity. Accuracy = share of sources whose nearest target is their translation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from xfer import metrics
from xfer.errors import XferError


def num_labels(task) -> None:
    return None


@torch.inference_mode()
def embed(model, tokenizer, sentences: list[str], layer: int, max_length: int, batch_size: int,
          device: torch.device) -> np.ndarray:
    n_layers = model.config.num_hidden_layers
    if layer > n_layers:
        raise XferError(f"retrieval layer {layer} does not exist: the model has {n_layers} layers "
                        f"(hidden_states 0..{n_layers}; set 'retrieval_layer' or the target's 'layer')")
    model.to(device).eval()
    out = []
    for start in range(0, len(sentences), batch_size):
        batch = tokenizer(sentences[start:start + batch_size], truncation=True, max_length=max_length,
                          padding=True, return_tensors="pt").to(device)
        hidden = model(**batch, output_hidden_states=True).hidden_states[layer].float()
        mask = batch["attention_mask"].unsqueeze(-1).float()
        out.append(((hidden * mask).sum(1) / mask.sum(1)).cpu().numpy())
    return np.concatenate(out)


def evaluate(model, task, split, rows, tokenizer, hp, device, layer: int, lang: str = "en"):
    cols = split.columns
    sources = [s.rstrip("\n") for s in rows[cols["source"]]]  # Tatoeba keeps a trailing newline
    targets = [t.rstrip("\n") for t in rows[cols["target"]]]
    src = embed(model, tokenizer, sources, layer, hp.max_length, hp.batch_size, device)
    tgt = embed(model, tokenizer, targets, layer, hp.max_length, hp.batch_size, device)
    nearest = metrics.cosine_nearest(src, tgt)
    return {"accuracy": metrics.retrieval_accuracy(nearest)}, nearest.tolist()


def write_predictions(predictions, path: Path) -> None:
    path.write_text("".join(f"{i}\n" for i in predictions), encoding="utf-8")

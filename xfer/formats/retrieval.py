"""Sentence retrieval (Tatoeba, BUCC 2018): no training; sentences are embedded by mean-pooling one hidden layer
of the encoder (special tokens included, as jiant and XTREME do). The task's `retrieval` says what follows:

- "nearest" (Tatoeba): each source sentence retrieves its nearest English sentence by cosine similarity.
  Accuracy = share of sources whose nearest target is their translation; predictions: one index per line.
- "bucc" (BUCC 2018): candidate pairs are mined by ratio margin over k=4 neighbours (`xfer.bucc.mine`), the
  score threshold is chosen on the language's sample gold (`dev`) and applied unchanged to the test
  candidates. Precision, recall and F1 over (source id, target id) pairs; predictions: the extracted pairs,
  `src_id<TAB>tgt_id` per line. The Hub's BUCC rows are the gold pairs only, so only their sentences are
  mined (the full BUCC corpora add many sentences without a translation).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from xfer import bucc, metrics
from xfer.errors import XferError
from xfer.formats import common

BUCC_K = 4  # neighbours of the ratio margin (XTREME, Artetxe and Schwenk 2019)


@dataclass(frozen=True)
class Mined:
    """BUCC predictions: the extracted (source id, target id) pairs, best first, and the threshold used."""

    pairs: list[tuple[str, str]]
    threshold: float


def num_labels(task) -> None:
    return None


@contextmanager
def _up_to(model, layer: int):
    """Run only the first `layer` transformer layers, so the encoder's output is hidden_states[layer] (the
    embeddings for 0): the layers above the pooled one are never computed. Encoders without an
    `encoder.layer` list keep every layer (their hidden states are read from `output_hidden_states`)."""
    layers = getattr(getattr(model, "encoder", None), "layer", None)
    if not isinstance(layers, torch.nn.ModuleList):
        yield False
        return
    model.encoder.layer = torch.nn.ModuleList(list(layers)[:layer])
    try:
        yield True
    finally:
        model.encoder.layer = layers


def embed(model, tokenizer, sentences: list[str], layer: int, max_length: int, batch_size: int,
          device: torch.device) -> np.ndarray:
    """Mean-pooled hidden_states[layer] of every sentence (special tokens included), float32, in order.
    Length-sorted batches of at most batch_size * max_length positions; bf16 on CUDA."""
    n_layers = model.config.num_hidden_layers
    if layer > n_layers:
        raise XferError(f"retrieval layer {layer} does not exist: the model has {n_layers} layers "
                        f"(hidden_states 0..{n_layers}; set 'retrieval_layer' or the target's 'layer')")
    enc = tokenizer(sentences, truncation=True, max_length=max_length, return_attention_mask=False)
    features = [{"input_ids": ids} for ids in enc["input_ids"]]
    with _up_to(model, layer) as truncated:
        def pooled(net, batch):
            out = net(**batch, output_hidden_states=not truncated)
            hidden = (out.last_hidden_state if truncated else out.hidden_states[layer]).float()
            mask = batch["attention_mask"].unsqueeze(-1).float()
            return {"embedding": (hidden * mask).sum(1) / mask.sum(1)}

        out = common.infer(model, features, common.collate(tokenizer.pad_token_id), batch_size * max_length,
                           device, pooled)
    return np.stack(out["embedding"]) if features else np.zeros((0, model.config.hidden_size), np.float32)


def evaluate(model, task, split, rows, tokenizer, hp, device, layer: int, lang: str = "en", dev=None):
    """`dev`: (split, rows) of the language's sample gold, on which BUCC mining chooses its threshold."""
    if task.retrieval == "bucc":
        if dev is None:
            raise XferError(f"{task.name}: mining needs the language's sample gold to choose its threshold")
        dev_candidates, dev_gold = _mine(model, dev[0], dev[1], tokenizer, hp, device, layer)
        candidates, gold = _mine(model, split, rows, tokenizer, hp, device, layer)
        threshold = bucc.select_threshold(dev_candidates, dev_gold)
        chosen = bucc.apply_threshold(candidates, threshold)
        pairs = [(s, t) for s, t, _ in candidates if (s, t) in chosen]
        return bucc.pair_scores(chosen, gold), Mined(pairs, threshold)
    cols = split.columns
    sources = [s.rstrip("\n") for s in rows[cols["source"]]]  # Tatoeba keeps a trailing newline
    targets = [t.rstrip("\n") for t in rows[cols["target"]]]
    src = embed(model, tokenizer, sources, layer, hp.max_length, hp.batch_size, device)
    tgt = embed(model, tokenizer, targets, layer, hp.max_length, hp.batch_size, device)
    nearest = metrics.cosine_nearest(src, tgt)
    return {"accuracy": metrics.retrieval_accuracy(nearest)}, nearest.tolist()


def _mine(model, split, rows, tokenizer, hp, device, layer: int):
    """BUCC candidates mined between the rows' source and target sentences, and the rows' gold id pairs.
    Each id is embedded once; as in XTREME, a sentence text that occurs under several ids is not mined."""
    cols = split.columns
    source_ids, target_ids = [str(i) for i in rows[cols["source_id"]]], [str(i) for i in rows[cols["target_id"]]]
    sources = dict(zip(source_ids, (s.rstrip("\n") for s in rows[cols["source"]])))
    targets = dict(zip(target_ids, (t.rstrip("\n") for t in rows[cols["target"]])))
    src = embed(model, tokenizer, list(sources.values()), layer, hp.max_length, hp.batch_size, device)
    tgt = embed(model, tokenizer, list(targets.values()), layer, hp.max_length, hp.batch_size, device)
    candidates = bucc.mine(src, tgt, list(sources), list(targets), k=BUCC_K, src_texts=list(sources.values()),
                           tgt_texts=list(targets.values()))
    return candidates, set(zip(source_ids, target_ids))


def write_predictions(predictions, path: Path) -> None:
    if isinstance(predictions, Mined):
        path.write_text("".join(f"{s}\t{t}\n" for s, t in predictions.pairs), encoding="utf-8")
    else:
        path.write_text("".join(f"{i}\n" for i in predictions), encoding="utf-8")


def write_labels(task, split, rows, path: Path) -> None:
    """BUCC: the rows' gold id pairs, `src_id<TAB>tgt_id` per line; Tatoeba: source i's translation is
    target i, so line i holds i."""
    if task.retrieval == "bucc":
        cols = split.columns
        pairs = zip(rows[cols["source_id"]], rows[cols["target_id"]])
        path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    else:
        write_predictions(range(len(rows)), path)

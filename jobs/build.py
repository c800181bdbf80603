"""Build the demo's base model: train a tokenizer on the bundled text, initialise a tiny XLM-R from a
config, optionally pretrain it with masked-language modelling, and commit it to the store."""

from __future__ import annotations

import json
import shutil

from transformers import AutoModelForMaskedLM, DataCollatorForLanguageModeling

from xfer import model as models
from xfer import determinism, tiny, tokens
from xfer.config import Hparams, TinyModel
from xfer.data import BUNDLED
from xfer.train import train


def run(job, ctx) -> None:
    spec = TinyModel(**job.params["tiny"])
    out = ctx.work / job.id
    shutil.rmtree(out, ignore_errors=True)
    lines = sorted(set(tiny.corpus(BUNDLED)))
    tokenizer = tiny.train_tokenizer(lines, spec.vocab_size)
    import torch

    torch.manual_seed(spec.seed)
    net = AutoModelForMaskedLM.from_config(tiny.config(tokenizer, spec), attn_implementation="sdpa")
    loss, counts = None, tokens.TokenCounts()
    if spec.pretrain_steps:
        hp = Hparams(lr=spec.pretrain_lr, batch_size=32, max_length=128, warmup=0.05, weight_decay=0.01)
        enc = tokenizer(lines, truncation=True, max_length=hp.max_length)
        features = [{"input_ids": ids} for ids in enc["input_ids"]]
        collate = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, return_tensors="pt",
                                                  seed=spec.seed)
        with counts.watching(net):
            loss = train(net, features, collate, hp, spec.pretrain_steps, spec.seed, ctx.device,
                         on_step=lambda done: ctx.progress(done, spec.pretrain_steps))["loss"]
    models.save(net.cpu(), tokenizer, out)
    (out / "xfer.json").write_text(json.dumps({"job": job.id, "vocab_size": len(tokenizer), "mlm_loss": loss,
                                               "tokens": counts.as_dict()}))
    ctx.store.commit(job.output, out, meta={"job": job.id, "kind": job.kind, "environment": determinism.environment()})

"""The offline demo's model: a tokenizer trained with `tokenizers` on bundled text, and a small
XLM-R-architecture encoder built from an `XLMRobertaConfig` (optionally MLM-pretrained for a few steps)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast, XLMRobertaConfig

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def corpus(root: Path) -> Iterator[str]:
    """Every text field of every JSON-lines file under `root` (strings, and lists of strings joined)."""
    for path in sorted(root.rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            yield from _texts(json.loads(line))


def _texts(value) -> Iterator[str]:
    if isinstance(value, str):
        if len(value) > 3:
            yield value.strip()
    elif isinstance(value, dict):
        for v in value.values():
            yield from _texts(v)
    elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        yield " ".join(value)
    elif isinstance(value, list):
        for v in value:
            yield from _texts(v)


def train_tokenizer(lines: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A BPE tokenizer over SentencePiece-style (Metaspace) words, with XLM-R's special tokens and templates.

    BPE rather than XLM-R's Unigram because the `tokenizers` Unigram trainer is not deterministic from run
    to run, and the build job's output must be a function of its inputs. Saved as `PreTrainedTokenizerFast`:
    XLMRobertaTokenizer would rebuild its pipeline on reload and drop the normaliser set here."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, min_frequency=2)
    tok.train_from_iterator(lines, trainer=trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")),
                                                      ("<s>", tok.token_to_id("<s>")), trim_offsets=False)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   sep_token="</s>", cls_token="<s>", pad_token="<pad>", mask_token="<mask>",
                                   model_max_length=512)


def config(tokenizer: PreTrainedTokenizerFast, spec) -> XLMRobertaConfig:
    return XLMRobertaConfig(
        vocab_size=len(tokenizer), hidden_size=spec.hidden_size, num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads, intermediate_size=spec.intermediate_size,
        max_position_embeddings=spec.max_position, type_vocab_size=1, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )

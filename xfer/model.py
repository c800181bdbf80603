"""Models: find a model's folder, build the head a task format needs, and move encoder weights between heads.

Heads are never carried over: a target model gets the encoder of the intermediate checkpoint (or of the
pretrained model) and a freshly initialised head. The encoder load is strict: any missing or unexpected
key other than the unused pooler is an error, so a head can never be reused by accident.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import (AutoConfig, AutoModel, AutoModelForMaskedLM, AutoModelForMultipleChoice,
                          AutoModelForQuestionAnswering, AutoModelForSequenceClassification,
                          AutoModelForTokenClassification, AutoTokenizer)

from xfer.errors import XferError

HEADS = {
    "classification": AutoModelForSequenceClassification,
    "tagging": AutoModelForTokenClassification,
    "span_qa": AutoModelForQuestionAnswering,
    "multiple_choice": AutoModelForMultipleChoice,
    "retrieval": AutoModel,
    "mlm": AutoModelForMaskedLM,
}
WEIGHT_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt"]


def resolve(ref: dict, store=None, cache: Path | None = None) -> Path:
    """The local folder of a model reference: {"hub": id, "revision": r}, {"path": dir} or {"store": prefix}."""
    if "path" in ref:
        path = Path(ref["path"]).expanduser()
        if not path.is_dir():
            raise XferError(f"model folder not found: {path}")
        return path
    if "store" in ref:
        assert store is not None and cache is not None
        local = cache / ref["store"].strip("/").replace("/", "__")
        store.fetch(ref["store"], local)
        return local
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(ref["hub"], revision=ref.get("revision"), allow_patterns=WEIGHT_PATTERNS))
    except Exception as exc:  # offline, unknown repo, gated repo: one line naming the model
        raise XferError(f"cannot fetch model {ref['hub']!r} from the Hub: {type(exc).__name__}") from exc


def device(spec: str = "auto") -> torch.device:
    """The device jobs run on; on CUDA, float32 matmuls and convolutions may use TF32 (training runs in bf16
    autocast anyway; TF32 speeds up what stays in float32)."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise XferError(f"config asks for device {spec!r} but CUDA is not available")
    if spec.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return torch.device(spec)


def load_tokenizer(model_dir: Path):
    return AutoTokenizer.from_pretrained(model_dir)


def encoder_weights(model_dir: Path, prefix: str) -> dict[str, torch.Tensor]:
    """The encoder's tensors from a folder's safetensors (sharded or not), keyed as in the bare encoder."""
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (model_dir / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        raise XferError(f"{model_dir}: no model.safetensors (xfer reads safetensors only, never pickles)")
    encoder = {}
    for name in files:
        for key, tensor in load_file(model_dir / name).items():
            if key.startswith(prefix + "."):
                encoder[key[len(prefix) + 1:]] = tensor
            elif key.split(".")[0] in ("embeddings", "encoder", "pooler"):
                encoder[key] = tensor  # saved from a bare encoder
    if not encoder:
        raise XferError(f"{model_dir}: no encoder weights with prefix {prefix!r}")
    return encoder


def build(fmt: str, model_dir: Path, *, num_labels: int | None = None, seed: int = 0,
          init_encoder: bool = True) -> torch.nn.Module:
    """A model with the head for `fmt`, the encoder of `model_dir`, and a head initialised from `seed`."""
    config = AutoConfig.from_pretrained(model_dir)
    config.num_labels = 2 if num_labels is None else num_labels  # resets any label names of an earlier head
    torch.manual_seed(seed)
    model = HEADS[fmt].from_config(config, attn_implementation="sdpa")
    if init_encoder:
        load_encoder(model, model_dir)
    return model


def load_encoder(model: torch.nn.Module, model_dir: Path) -> None:
    encoder = model.base_model
    result = encoder.load_state_dict(encoder_weights(model_dir, model.base_model_prefix), strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("pooler.")]
    unexpected = [k for k in result.unexpected_keys if not k.startswith("pooler.")]
    if missing or unexpected:
        raise XferError(f"{model_dir}: encoder weights do not fit {type(model).__name__}: "
                        f"missing {missing[:3]}, unexpected {unexpected[:3]}")


def save(model: torch.nn.Module, tokenizer, out_dir: Path) -> None:
    """Weights as safetensors, with config and tokenizer, loadable by `build` and `load_tokenizer`."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the runner shows its own progress
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)

"""Multi-task intermediate models: one shared encoder with one head per task.

Each task gets the Hugging Face model of its format (sequence classification, QA, multiple choice, token
classification), and every one of them holds the *same* encoder module, so a step on any task trains the one
encoder. The encoder is taken from a head that uses the pooler (multiple choice does), so every head finds
what it needs. Saved as one safetensors file: the encoder under the base-model prefix (`roberta.`), as in any
single-task checkpoint, so the target phase reads it unchanged; each head under `heads.<task>.`.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from safetensors.torch import save_file

from xfer import model as models


class MultiTaskModel(torch.nn.Module):
    """`forward(task=name, **batch)` runs that task's head (and the shared encoder)."""

    def __init__(self, heads: dict[str, torch.nn.Module]):
        super().__init__()
        self.prefix = next(iter(heads.values())).base_model_prefix
        encoders = [getattr(head, self.prefix) for head in heads.values()]
        self.encoder = next((e for e in encoders if getattr(e, "pooler", None) is not None), encoders[0])
        for head in heads.values():
            setattr(head, self.prefix, self.encoder)
        self.heads = torch.nn.ModuleDict(heads)
        self.config = self.encoder.config

    @property
    def base_model(self) -> torch.nn.Module:
        """The shared encoder (as `base_model` is for a Hugging Face head)."""
        return self.encoder

    def forward(self, task: str, **batch):
        return self.heads[task](**batch)

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every weight once: the encoder as `<prefix>.*`, each head's own layers as `heads.<task>.*`."""
        out = {f"{self.prefix}.{k}": v for k, v in self.encoder.state_dict().items()}
        for name, head in self.heads.items():
            out.update({f"heads.{name}.{k}": v for k, v in head.state_dict().items()
                        if not k.startswith(self.prefix + ".")})
        return out

    def save_pretrained(self, out_dir: Path, safe_serialization: bool = True) -> None:
        """config.json (the encoder's) and model.safetensors, readable by `xfer.model.build` for any head."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        config = copy.deepcopy(self.config)
        config.architectures = [type(self.encoder).__name__]
        config.save_pretrained(out_dir)
        save_file({k: v.detach().contiguous() for k, v in self.tensors().items()}, out_dir / "model.safetensors",
                  metadata={"format": "pt"})


def build(heads: dict[str, tuple[str, int | None]], model_dir: Path, seed: int = 0) -> MultiTaskModel:
    """One head per task ({task: (format, num_labels)}) around the encoder of `model_dir`; heads initialised
    from `seed`. Built one at a time, each head's own encoder dropped as soon as the shared one replaces it."""
    built: dict[str, torch.nn.Module] = {}
    shared = None
    for name, (fmt, num_labels) in heads.items():
        head = models.build(fmt, model_dir, num_labels=num_labels, seed=seed, init_encoder=False)
        encoder = getattr(head, head.base_model_prefix)
        if shared is None or (getattr(shared, "pooler", None) is None and getattr(encoder, "pooler", None) is not None):
            shared = encoder
        built[name] = head
        for other in built.values():
            setattr(other, other.base_model_prefix, shared)
    net = MultiTaskModel(built)
    owner = next(head for head in built.values() if getattr(head, head.base_model_prefix) is net.encoder)
    models.load_encoder(owner, model_dir)
    return net

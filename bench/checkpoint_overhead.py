"""Benchmark: what preemption safety costs. Runs the real intermediate-training job twice on the same model,
data and budget, once committing no checkpoint (baseline) and once committing one every `--every` steps
(model + optimizer state as safetensors, sha256 manifest, completion marker, older checkpoint dropped),
and prints the wall-clock ratio of the two, measured in the same process.

    python bench/checkpoint_overhead.py                       # tiny model on CPU, local store
    python bench/checkpoint_overhead.py --hidden 768 --layers 12 --heads 12 --steps 200 --every 50 \
        --store s3://bucket/bench                             # XLM-R-base-sized, on a GPU, against S3

Each variant runs `--repeats` times in alternation with a fresh store; the best time of each is compared.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

import jobs  # noqa: E402
from xfer import config as configs  # noqa: E402
from xfer import model as models  # noqa: E402
from xfer import tiny  # noqa: E402
from xfer.config import TinyModel  # noqa: E402
from xfer.context import JobContext  # noqa: E402
from xfer.data import BUNDLED  # noqa: E402
from xfer.plan import build_plan  # noqa: E402
from xfer.store import open_store  # noqa: E402


def base_model(folder: Path, args) -> Path:
    """A randomly initialised XLM-R-architecture encoder of the requested size, with a tokenizer."""
    import torch
    from transformers import AutoModelForMaskedLM

    spec = TinyModel(vocab_size=args.vocab, hidden_size=args.hidden, num_layers=args.layers, num_heads=args.heads,
                     intermediate_size=4 * args.hidden)
    tokenizer = tiny.train_tokenizer(sorted(set(tiny.corpus(BUNDLED))), spec.vocab_size)
    torch.manual_seed(0)
    net = AutoModelForMaskedLM.from_config(tiny.config(tokenizer, spec), attn_implementation="sdpa")
    models.save(net, tokenizer, folder)
    return folder


def run_once(model_dir: Path, args, every: int, root: Path) -> tuple[float, int]:
    """Seconds taken by the intermediate job, and the checkpoints it committed."""
    store_uri = args.store.rstrip("/") + f"/{root.name}" if args.store else f"file://{root}/store"
    root.mkdir(parents=True)
    cfg_path = root / "bench.yaml"
    cfg_path.write_text(yaml.safe_dump({
        "name": "bench", "model": {"name": str(model_dir)}, "data": "bundled", "device": args.device,
        "intermediate": {"tasks": [args.task], "budgets": [args.steps], "checkpoint_every": every,
                         "hparams": {"lr": 5e-4, "batch_size": args.batch_size, "max_length": 128}},
        "targets": {"xnli": {"languages": ["en"]}}, "store": store_uri,
    }))
    cfg, sha = configs.load(str(cfg_path))
    plan = build_plan(cfg, sha)
    (job,) = plan.stage("intermediate")
    store = open_store(store_uri)
    commits = []
    commit = store.commit

    def counting_commit(prefix, local_dir, meta=None):
        if "/checkpoints/" in prefix:
            commits.append(prefix)
        return commit(prefix, local_dir, meta)

    store.commit = counting_commit
    ctx = JobContext(config=cfg, plan=plan, store=store, work=root / "work")
    start = time.perf_counter()
    jobs.run(job, ctx)
    return time.perf_counter() - start, len(commits)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="mnli")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--every", type=int, default=10, help="checkpoint interval of the measured variant")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--store", default=None, help="store URI prefix (default: a local folder)")
    args = ap.parse_args()
    if not 0 < args.every < args.steps:
        ap.error("--every must be between 1 and --steps - 1")

    with tempfile.TemporaryDirectory(prefix="xfer-bench-") as tmp:
        tmp = Path(tmp)
        model_dir = base_model(tmp / "base", args)
        size_mb = sum(f.stat().st_size for f in model_dir.glob("*.safetensors")) / 2**20
        run_once(model_dir, args, args.steps, tmp / "warmup")  # imports, data loading caches
        best = {"baseline": float("inf"), "checkpointed": float("inf")}
        n_checkpoints = 0
        for r in range(args.repeats):
            best["baseline"] = min(best["baseline"], run_once(model_dir, args, args.steps, tmp / f"b{r}")[0])
            seconds, n_checkpoints = run_once(model_dir, args, args.every, tmp / f"c{r}")
            best["checkpointed"] = min(best["checkpointed"], seconds)
    ratio = best["checkpointed"] / best["baseline"]
    print(f"model: hidden {args.hidden}, {args.layers} layers, weights {size_mb:.1f} MiB; "
          f"task {args.task}, {args.steps} steps, batch {args.batch_size}; device {models.device(args.device)}")
    print(f"baseline (no checkpoint):          {best['baseline']:.2f} s")
    print(f"checkpoint every {args.every:>4} steps ({n_checkpoints}): {best['checkpointed']:.2f} s")
    print(f"ratio checkpointed / baseline:     {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

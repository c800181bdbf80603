"""What a sweep will compute, before anything runs (`xfer plan CONFIG --cost`).

For every job of the plan, per part - training, English dev, language dev (the oracle pass), test, retrieval -
the optimizer steps, the rows evaluated, the token positions (real ones, and computed ones with padding) and
the FLOPs, summed per job kind and part, with GPU-hours at a stated MFU and peak throughput.

The model of the work:
- token positions per model input come from the data: measured where it can be read (a local mirror or the
  bundled fixtures, tokenised with the model's tokenizer into the very features the jobs build: windows,
  choices), else modelled (`xfer.hub_stats`: published split sizes and lognormal lengths; `data: hub` is never
  downloaded for an estimate); each row of the table says which;
- padding follows the configured batching, simulated with the jobs' own code (`xfer.batching`): training
  batches of `batch_size` (length-grouped or random), inference batches of `eval_tokens` positions;
- evaluation follows the configured protocol (`xfer.selection`, `jobs/target.py`): the English dev set at each
  evaluation point, target-language dev sets at each point only with `selection.oracle`, test sets once at the
  default point (with the oracle pass: at most once per distinct chosen point, min(points, 1 + languages);
  with `test_at_every_point`: at every point besides);
- FLOPs per position (Kaplan et al. 2020): forward 2 N + 4 L d w, with N the model's non-embedding parameters,
  L its layers, d its width and w the padded length of the row's batch; training costs 3 forwards. Retrieval
  runs only the layers up to the pooled one. GPU-hours = FLOPs / (MFU x peak).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from xfer import batching, hub_stats, selection, tasks
from xfer.config import Hparams, SweepConfig
from xfer.errors import XferError

SAMPLE = 20_000  # features simulated per set; larger sets are scaled from these
CHOICES = {"hellaswag": 4, "cosmosqa": 4, "commonsenseqa": 5}
QUESTION_TOKENS = 15  # modelled question length inside a QA window
KNOWN_SHAPES = {  # (layers, hidden, feed-forward) of encoders whose config may not be at hand offline
    "FacebookAI/xlm-roberta-large": (24, 1024, 4096), "xlm-roberta-large": (24, 1024, 4096),
    "FacebookAI/xlm-roberta-base": (12, 768, 3072), "xlm-roberta-base": (12, 768, 3072),
}
PARTS = ("training", "English dev", "language dev", "test", "retrieval")


@dataclass(frozen=True)
class Shape:
    layers: int
    hidden: int
    ffn: int

    @property
    def params(self) -> int:
        """Non-embedding parameters: attention (4 d^2) and feed-forward (2 d f) weights per layer."""
        return self.layers * (4 * self.hidden ** 2 + 2 * self.hidden * self.ffn)


@dataclass
class Positions:
    """Token positions of some work: real ones, computed ones (padding included), and the sum over rows of
    rows x width^2 (what attention costs)."""

    real: float = 0.0
    computed: float = 0.0
    square: float = 0.0

    def scaled(self, factor: float) -> Positions:
        return Positions(self.real * factor, self.computed * factor, self.square * factor)

    def add(self, other: Positions) -> None:
        self.real += other.real
        self.computed += other.computed
        self.square += other.square


@dataclass
class Line:
    """One (job kind, part) row of the table."""

    kind: str
    part: str
    jobs: set = field(default_factory=set)
    steps: int = 0
    rows: float = 0.0
    positions: Positions = field(default_factory=Positions)
    flops: float = 0.0
    sources: set = field(default_factory=set)


def model_shape(cfg: SweepConfig) -> tuple[Shape, str]:
    """The encoder's shape, from the config (a built model), its config.json, or a table of known ids."""
    spec = cfg.model
    if spec.build is not None:
        b = spec.build
        return Shape(b.num_layers, b.hidden_size, b.intermediate_size), "the config's model build"
    if spec.name in KNOWN_SHAPES:  # no network call for the usual encoders
        return Shape(*KNOWN_SHAPES[spec.name]), f"{spec.name} (known shape)"
    from transformers import AutoConfig

    for local_only in (True, False):
        try:
            conf = AutoConfig.from_pretrained(spec.name, revision=spec.revision, local_files_only=local_only)
            return Shape(conf.num_hidden_layers, conf.hidden_size, conf.intermediate_size), f"{spec.name} config.json"
        except Exception:  # not cached / offline: try the Hub, then give up with one line
            continue
    raise XferError(f"cost: cannot read the config of model {spec.name!r} (offline?) and its shape is not known; "
                    f"known: {', '.join(sorted(KNOWN_SHAPES))}")


# --- the data's model inputs: (rows, width) per feature ------------------------------------------------


class Inputs:
    """The (rows, width) of every model input of a task's split, measured or modelled; cached per split."""

    def __init__(self, cfg: SweepConfig):
        self.cfg = cfg
        self.per_pass: dict = {}  # (split key, token budget) -> Positions of one inference pass
        self.per_batch: dict = {}  # (split key, batch size, grouping) -> Positions of one training micro-batch
        self.measured = cfg.data != "hub"
        self._tokenizer = None
        self._cache: dict = {}
        if self.measured:
            from xfer.data import DataSource

            self.data = DataSource(cfg.data, files=cfg.intermediate.files)

    def tokenizer(self):
        if self._tokenizer is None:
            spec = self.cfg.model
            if spec.build is not None:  # the very tokenizer the build job trains
                from xfer import tiny
                from xfer.data import BUNDLED

                self._tokenizer = tiny.train_tokenizer(sorted(set(tiny.corpus(BUNDLED))), spec.build.vocab_size)
            else:
                from transformers import AutoTokenizer

                try:
                    self._tokenizer = AutoTokenizer.from_pretrained(spec.name, revision=spec.revision)
                except Exception as exc:
                    raise XferError(f"cost: cannot load the tokenizer of {spec.name!r} to measure the data "
                                    f"({type(exc).__name__})") from None
        return self._tokenizer

    @staticmethod
    def key(task: tasks.Task, role: str, lang: str, hp: Hparams) -> tuple:
        return task.name, role, lang, hp.max_length, hp.doc_stride

    def shapes(self, task: tasks.Task, role: str, lang: str, hp: Hparams) -> tuple[list, float, str]:
        """(shapes of a sample of the features, how many features the whole split has, source)."""
        key = self.key(task, role, lang, hp)
        if key not in self._cache:
            self._cache[key] = self._measure(task, role, lang, hp) if self.measured else modelled_shapes(
                task, role, lang, hp)
        return self._cache[key]

    def _measure(self, task, role, lang, hp):
        from xfer import formats

        fmt = formats.get(task.format)
        features, total, read = [], 0, 0
        for split in tasks.splits(getattr(task, role)):
            rows = self.data.load(task, split, lang)
            total += len(rows)
            if len(rows) > SAMPLE:
                rows = rows.select(np.random.default_rng(0).choice(len(rows), SAMPLE, replace=False))
            read += len(rows)
            if task.format == "retrieval":  # both sides of every pair are embedded
                texts = [str(t) for c in ("source", "target") for t in rows[split.columns[c]]]
                features += [{"input_ids": ids} for ids in self.tokenizer()(
                    texts, truncation=True, max_length=hp.max_length)["input_ids"]]
                continue
            make = fmt.train_features if role == "train" else fmt.eval_set
            encoded = make(task, split, rows, self.tokenizer(), hp)
            features += list(getattr(encoded, "features", encoded))
        shapes = [batching.token_shape(f) for f in features]
        return shapes, len(shapes) * total / max(1, read), "measured"

def modelled_shapes(task: tasks.Task, role: str, lang: str, hp: Hparams) -> tuple[list, float, str]:
    """`Inputs.shapes` from the modelled sizes and lengths of `xfer.hub_stats`."""
    name = task.name
    n = hub_stats.rows(name, role, lang)
    sample = min(n, SAMPLE)
    if task.format == "span_qa":
        totals = hub_stats.lengths(name, sample, seed=len(lang), max_length=1 << 20)
        shapes = [(1, w) for t in totals for w in _qa_windows(int(t), hp.max_length, hp.doc_stride)]
        return shapes, len(shapes) * n / max(1, sample), "modelled"
    if task.format == "retrieval":  # both sides of every pair are embedded
        widths = hub_stats.lengths(name, 2 * sample, seed=len(lang), max_length=hp.max_length)
        return [(1, int(w)) for w in widths], 2.0 * n, "modelled"
    if task.format == "multiple_choice":
        k = CHOICES[name]
        widths = hub_stats.lengths(name, sample * k, seed=len(lang), max_length=hp.max_length).reshape(-1, k)
        return [(k, int(w.max())) for w in widths], float(n), "modelled"
    widths = hub_stats.lengths(name, sample, seed=len(lang), max_length=hp.max_length)
    return [(1, int(w)) for w in widths], float(n), "modelled"


def _split(total: int, weights: dict[str, float]) -> dict[str, int]:
    """`total` steps split in proportion to `weights`, in whole steps that add up to `total`."""
    shares = {k: total * w / sum(weights.values()) for k, w in weights.items()}
    out = {k: int(v) for k, v in shares.items()}
    for k in sorted(shares, key=lambda k: out[k] - shares[k])[:total - sum(out.values())]:
        out[k] += 1
    return out


def _qa_windows(tokens: int, max_length: int, stride: int) -> list[int]:
    """Widths of the doc-stride windows of a question+context of `tokens` tokens."""
    capacity = max_length - QUESTION_TOKENS - 3
    context = max(1, tokens - QUESTION_TOKENS - 3)
    if context <= capacity:
        return [tokens]
    count = 1 + math.ceil((context - capacity) / max(1, capacity - stride))
    last = context - (count - 1) * (capacity - stride)
    return [max_length] * (count - 1) + [QUESTION_TOKENS + 3 + last]


# --- simulating the batching ------------------------------------------------------------------------


def training_positions(shapes: list, hp: Hparams, micro_batches: int, seed: int = 0) -> Positions:
    """Positions of `micro_batches` training batches drawn as `xfer.train` draws them from these features."""
    widths = np.array([w for _, w in shapes], dtype=np.int64)
    rows = np.array([r for r, _ in shapes], dtype=np.int64)
    order = batching.TrainBatches(len(shapes), hp.batch_size, seed, widths, getattr(hp, "batching", "length"))
    simulated = min(micro_batches, order.per_epoch * 2)
    out = Positions()
    for i in range(simulated):
        idx = order.indices(i)
        width = int(widths[idx].max())
        out.add(Positions(float((rows[idx] * widths[idx]).sum()), float(rows[idx].sum() * width),
                          float(rows[idx].sum() * width ** 2)))
    return out.scaled(micro_batches / max(1, simulated))


def inference_positions(shapes: list, max_tokens: int) -> Positions:
    """Positions of one inference pass over these features (`xfer.formats.common.infer`'s batches)."""
    out = Positions()
    for batch in batching.inference_batches(shapes, max_tokens):
        width = max(shapes[i][1] for i in batch)
        rows = sum(shapes[i][0] for i in batch)
        out.add(Positions(float(sum(shapes[i][0] * shapes[i][1] for i in batch)), float(rows * width),
                          float(rows * width ** 2)))
    return out


def flops(p: Positions, shape: Shape, layers: int | None = None, training: bool = False) -> float:
    layers = shape.layers if layers is None else layers
    forward = 2 * shape.params * (layers / shape.layers) * p.computed + 4 * layers * shape.hidden * p.square
    return 3 * forward if training else forward


# --- the estimate -----------------------------------------------------------------------------------


def estimate(cfg: SweepConfig, plan) -> tuple[list[Line], dict]:
    """The table's lines (per job kind and part) and what they rest on ({"model", "shape"})."""
    from xfer.train import steps_for_epochs, steps_per_epoch

    shape, shape_source = model_shape(cfg)
    inputs = Inputs(cfg)
    lines: dict[tuple[str, str], Line] = {}

    def line(kind, part) -> Line:
        return lines.setdefault((kind, part), Line(kind, part))

    def evaluate(kind, part, job, task, role, lang, hp, passes: float, layers=None):
        shapes, n, source = inputs.shapes(task, role, lang, hp)
        if not shapes or passes <= 0:
            return
        budget = getattr(hp, "eval_tokens", None) or hp.eval_batch_size * hp.max_length
        cached = (inputs.key(task, role, lang, hp), budget)
        if cached not in inputs.per_pass:
            inputs.per_pass[cached] = inference_positions(shapes, budget)
        one = inputs.per_pass[cached]
        entry = line(kind, part)
        entry.jobs.add(job.id)
        entry.rows += n * passes
        scaled = one.scaled(passes * n / len(shapes))
        entry.positions.add(scaled)
        entry.flops += flops(scaled, shape, layers)
        entry.sources.add(source)

    def train_part(kind, job, task_name, hp, steps, shapes, source):
        entry = line(kind, "training")
        entry.jobs.add(job.id)
        entry.steps += steps
        entry.rows += steps * hp.batch_size * hp.grad_accum
        cached = (inputs.key(tasks.get(task_name), "train", "en", hp), hp.batch_size, hp.batching)
        if cached not in inputs.per_batch:
            inputs.per_batch[cached] = training_positions(shapes, hp, 1 << 30).scaled(1 / (1 << 30))
        p = inputs.per_batch[cached].scaled(steps * hp.grad_accum)
        entry.positions.add(p)
        entry.flops += flops(p, shape, training=True)
        entry.sources.add(source)

    for job in plan.jobs:
        p = job.params
        if job.kind == "intermediate":
            hp = Hparams(**p["hparams"])
            names = p["mixture"]["tasks"] if "mixture" in p else [p["task"]]
            budget = p["budget"]
            sizes = {name: inputs.shapes(tasks.get(name), "train", "en", hp) for name in names}
            cap = p["mixture"]["cap"] if "mixture" in p else None
            weight = {name: min(n, cap) if cap else n for name, (_, n, _) in sizes.items()}
            for name, steps in _split(budget, weight).items():  # a mixture's steps, as it samples them
                shapes, _, source = sizes[name]
                train_part("intermediate", job, name, hp, steps, shapes, source)
                evaluate("intermediate", "English dev", job, tasks.get(name), "dev", "en", hp, 1)
        elif job.kind == "target":
            hp = Hparams(**p["hparams"])
            how = p["selection"]
            lead = tasks.get(next(iter(p["tasks"])))
            shapes, n, source = inputs.shapes(lead, "train", "en", hp)
            steps = steps_for_epochs(int(round(n)), hp)
            points = len(selection.evaluation_points(steps, steps_per_epoch(int(round(n)), hp), how["max_points"]))
            train_part("target", job, lead.name, hp, steps, shapes, source)
            if lead.dev is not None:
                evaluate("target", "English dev", job, lead, "dev", "en", hp, points)
            for name, entry in p["tasks"].items():
                task = tasks.get(name)
                langs = entry["languages"]
                if how.get("oracle") and task.lang_dev is not None:
                    for lang in langs:
                        if entry["data"]["lang_dev"].get(lang) not in (None, p["data"]["dev"]):
                            evaluate("target", "language dev", job, task, "lang_dev", lang, hp, points)
                passes = min(points, 1 + len(langs)) if how.get("oracle") else 1
                passes += points if how.get("test_at_every_point") else 0
                for lang in langs:
                    evaluate("target", "test", job, task, "test", lang, hp, passes)
        elif job.kind == "retrieval":
            task = tasks.get(p["task"])
            hp = Hparams(max_length=p["hparams"]["max_length"], eval_batch_size=p["hparams"]["batch_size"])
            for lang in p["languages"]:  # rows: sentences embedded, both sides of every pair
                evaluate("retrieval", "retrieval", job, task, "test", lang, hp, 1, layers=p["layer"])
                if task.retrieval == "bucc":  # the sample gold, for the threshold
                    evaluate("retrieval", "retrieval", job, task, "lang_dev", lang, hp, 1, layers=p["layer"])
    order = {part: i for i, part in enumerate(PARTS)}
    kinds = {"intermediate": 1, "target": 2, "retrieval": 3}
    result = sorted(lines.values(), key=lambda e: (kinds[e.kind], order[e.part]))
    return result, {"shape": shape, "shape_source": shape_source, "model": cfg.model.name or "built"}


def table(lines: list[Line], meta: dict, mfu: float, peak_tflops: float, title: str):
    """A rich Table of the estimate, with a total row."""
    from rich.table import Table

    def hours(f: float) -> float:
        return f / (mfu * peak_tflops * 1e12) / 3600

    t = Table(title=title, caption=(
        f"model: {meta['model']} ({meta['shape'].layers} layers, hidden {meta['shape'].hidden}, "
        f"{meta['shape'].params / 1e6:.0f}M non-embedding parameters; {meta['shape_source']}); "
        f"GPU-hours at {mfu:.0%} MFU of {peak_tflops:g} TFLOP/s; positions in millions"))
    for name in ("job kind", "part", "jobs", "optimizer steps", "rows", "real positions", "computed positions",
                 "real/computed", "PFLOP", "GPU-hours", "lengths"):
        t.add_column(name, justify="left" if name in ("job kind", "part", "lengths") else "right")
    total = Line("total", "")
    for e in lines:
        ratio = e.positions.real / e.positions.computed if e.positions.computed else None
        t.add_row(e.kind, e.part, f"{len(e.jobs):,}", f"{e.steps:,}" if e.steps else "", f"{e.rows:,.0f}",
                  f"{e.positions.real / 1e6:,.1f}", f"{e.positions.computed / 1e6:,.1f}",
                  f"{ratio:.2f}" if ratio else "", f"{e.flops / 1e15:,.1f}", f"{hours(e.flops):,.2f}",
                  ", ".join(sorted(e.sources)))
        total.jobs |= e.jobs
        total.steps += e.steps
        total.rows += e.rows
        total.positions.add(e.positions)
        total.flops += e.flops
    ratio = total.positions.real / total.positions.computed if total.positions.computed else None
    t.add_row("total", "", f"{len(total.jobs):,}", f"{total.steps:,}", f"{total.rows:,.0f}",
              f"{total.positions.real / 1e6:,.1f}", f"{total.positions.computed / 1e6:,.1f}",
              f"{ratio:.2f}" if ratio else "", f"{total.flops / 1e15:,.1f}", f"{hours(total.flops):,.2f}", "",
              style="bold")
    return t


def as_json(lines: list[Line], meta: dict, mfu: float, peak_tflops: float) -> dict:
    def hours(f: float) -> float:
        return f / (mfu * peak_tflops * 1e12) / 3600

    return {"model": meta["model"], "layers": meta["shape"].layers, "hidden": meta["shape"].hidden,
            "non_embedding_params": meta["shape"].params, "mfu": mfu, "peak_tflops": peak_tflops,
            "lines": [{"kind": e.kind, "part": e.part, "jobs": len(e.jobs), "optimizer_steps": e.steps,
                       "rows": e.rows, "real_positions": e.positions.real,
                       "computed_positions": e.positions.computed, "flops": e.flops, "gpu_hours": hours(e.flops),
                       "lengths": sorted(e.sources)} for e in lines]}

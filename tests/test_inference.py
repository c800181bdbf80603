"""Length-sorted, token-budget inference: batches within their budget and fill, outputs back in row order, and
for every format the same predictions (and outputs to float tolerance) as running each example alone, without
any padding; retrieval embeddings stop at the pooled layer and equal that layer of the full encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xfer import batching, tasks
from xfer import model as models
from xfer.config import Hparams
from xfer.data import DataSource
from xfer.formats import classification, common, multiple_choice, retrieval, span_qa, tagging

DEVICE = torch.device("cpu")
HP = Hparams(max_length=64, doc_stride=16, eval_tokens=300)  # a small budget: many batches of mixed lengths


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny random XLM-R with a BPE tokenizer trained on the bundled text, saved as a model folder."""
    from transformers import AutoModelForMaskedLM

    from xfer import tiny
    from xfer.config import TinyModel
    from xfer.data import BUNDLED

    folder = tmp_path_factory.mktemp("tiny-model")
    tokenizer = tiny.train_tokenizer(sorted(set(tiny.corpus(BUNDLED))), 600)
    torch.manual_seed(0)
    spec = TinyModel(vocab_size=600, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
    net = AutoModelForMaskedLM.from_config(tiny.config(tokenizer, spec), attn_implementation="sdpa")
    models.save(net, tokenizer, folder)
    return folder


def _alone(model, features, pad, forward):
    """The reference: every feature run on its own, so nothing is padded."""
    model.eval()
    with torch.inference_mode():
        return [{k: v[0].float().numpy() for k, v in forward(model, pad([f])).items()} for f in features]


def _rows(task_name, split_name, lang="en"):
    task = tasks.get(task_name)
    return task, getattr(task, split_name), DataSource("bundled").load(task, getattr(task, split_name), lang)


def test_batches_keep_the_budget_and_the_fill():
    rng = np.random.default_rng(1)
    shapes = [(1, int(w)) for w in rng.integers(3, 120, size=500)] + [(4, 30), (4, 200)]
    batches = batching.inference_batches(shapes, max_tokens=600)
    seen = np.concatenate(batches)
    assert sorted(seen) == list(range(len(shapes)))
    for batch in batches:
        width = max(shapes[i][1] for i in batch)
        padded = sum(shapes[i][0] for i in batch) * width
        assert padded <= 600 or len(batch) == 1  # one example over the budget gets a batch of its own
        assert all(shapes[i][1] >= batching.MIN_FILL * width for i in batch)
    real = sum(r * w for r, w in shapes)
    computed = sum(sum(shapes[i][0] for i in b) * max(shapes[i][1] for i in b) for b in batches)
    assert real / computed > 0.95


def test_outputs_come_back_in_row_order(model_dir):
    tokenizer = models.load_tokenizer(model_dir)
    net = models.build("classification", model_dir, num_labels=3, seed=1)
    task, split, rows = _rows("xnli", "test", "de")
    features = classification.eval_set(task, split, rows, tokenizer, HP)
    pad = classification.collate(tokenizer)
    out = common.infer(net, features, pad, 300, DEVICE, common.logits)["logits"]
    shuffled = np.random.default_rng(0).permutation(len(features))
    again = common.infer(net, [features[i] for i in shuffled], pad, 300, DEVICE, common.logits)["logits"]
    for j, i in enumerate(shuffled):
        np.testing.assert_allclose(again[j], out[i], atol=1e-5)


def test_classification_predictions_match_unpadded_inference(model_dir):
    tokenizer = models.load_tokenizer(model_dir)
    net = models.build("classification", model_dir, num_labels=3, seed=1)
    task, split, rows = _rows("xnli", "test", "de")
    encoded = classification.eval_set(task, split, rows, tokenizer, HP)
    assert len({len(f["input_ids"]) for f in encoded}) > 5  # lengths vary: batches mix and pad them
    alone = _alone(net, encoded, classification.collate(tokenizer), common.logits)
    out = common.infer(net, encoded, classification.collate(tokenizer), 300, DEVICE, common.logits)["logits"]
    for got, want in zip(out, alone):
        np.testing.assert_allclose(got, want["logits"], atol=1e-5)
    predicted = classification.predict(net, task, encoded, tokenizer, HP, DEVICE)
    assert predicted == [task.labels[int(a["logits"].argmax())] for a in alone]


def test_tagging_predictions_match_unpadded_inference(model_dir):
    tokenizer = models.load_tokenizer(model_dir)
    task, split, rows = _rows("panx", "test")
    net = models.build("tagging", model_dir, num_labels=len(task.labels), seed=1)
    encoded = tagging.eval_set(task, split, rows, tokenizer, HP)
    alone = _alone(net, encoded.features, tagging.collate(tokenizer), common.logits)
    predicted = tagging.predict(net, task, encoded, tokenizer, HP, DEVICE)
    expected = [[None] * n for n in encoded.words]
    for (sentence, first, positions), a in zip(encoded.windows, alone):
        for k, position in enumerate(positions):
            expected[sentence][first + k] = task.labels[int(a["logits"][position].argmax())]
    assert predicted == expected
    assert [len(p) for p in predicted] == [len(t) for t in rows["ner_tags"]]


def test_span_qa_predictions_match_unpadded_inference(model_dir):
    from xfer import qa

    tokenizer = models.load_tokenizer(model_dir)
    task, split, rows = _rows("xquad", "test")
    net = models.build("span_qa", model_dir, num_labels=2, seed=1)
    encoded = span_qa.eval_set(task, split, rows, tokenizer, HP)
    alone = _alone(net, encoded.features, span_qa.collate(tokenizer), span_qa._spans)
    expected = qa.best_answers(encoded.ids, encoded.contexts, encoded.feature_example_index,
                               encoded.offset_mapping, [a["start"] for a in alone], [a["end"] for a in alone])
    assert span_qa.predict(net, task, encoded, tokenizer, HP, DEVICE) == expected
    assert len(expected) == len(rows) and any(expected.values())


def test_multiple_choice_predictions_match_unpadded_inference(model_dir):
    tokenizer = models.load_tokenizer(model_dir)
    task, split, rows = _rows("hellaswag", "dev")
    net = models.build("multiple_choice", model_dir, seed=1)
    encoded = multiple_choice.eval_set(task, split, rows, tokenizer, HP)
    features = [{"input_ids": f["input_ids"]} for f in encoded]
    alone = _alone(net, features, multiple_choice.collate(tokenizer), common.logits)
    predicted = multiple_choice.predict(net, task, encoded, tokenizer, HP, DEVICE)
    assert predicted == [int(a["logits"].argmax()) for a in alone]
    out = common.infer(net, features, multiple_choice.collate(tokenizer), 300, DEVICE, common.logits)["logits"]
    for got, want in zip(out, alone):
        np.testing.assert_allclose(got, want["logits"], atol=1e-5)


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_retrieval_embeddings_stop_at_the_pooled_layer(model_dir, layer):
    tokenizer = models.load_tokenizer(model_dir)
    encoder = models.build("retrieval", model_dir)
    task, split, rows = _rows("tatoeba", "test", "de")
    sentences = [s.rstrip("\n") for s in rows["source_sentence"]]
    got = retrieval.embed(encoder, tokenizer, sentences, layer, max_length=64, batch_size=4, device=DEVICE)
    assert len(encoder.encoder.layer) == 2  # the full encoder is back after embedding
    encoder.eval()
    with torch.inference_mode():
        for sentence, vector in zip(sentences, got):
            batch = tokenizer([sentence], truncation=True, max_length=64, return_tensors="pt")
            hidden = encoder(**batch, output_hidden_states=True).hidden_states[layer][0]
            np.testing.assert_allclose(vector, hidden.mean(0).numpy(), atol=1e-5)

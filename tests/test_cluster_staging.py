"""Staging (xfer/staging.py, jobs/stage.py) against the real S3 server: what a config reads from the Hub goes into
the store once, and offline pods read it from there through the local-mirror code path.

The "Hub" is the bundled fixtures behind a stand-in for `datasets.load_dataset`, and a stand-in for
`snapshot_download` that writes huggingface_hub's cache layout (refs/, blobs/, snapshot symlinks); the staged
model is then read back by the real `snapshot_download` with local_files_only=True.
"""

from __future__ import annotations

import io
import json
import uuid
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import yaml

from jobs import stage
from xfer import config as configs, staging, tasks
from xfer.cli import main
from xfer.data import BUNDLED, DataSource
from xfer.errors import TemporaryFailure, XferError
from xfer.plan import build_plan
from xfer.store import open_store

ROOT = Path(__file__).resolve().parent.parent
CONFIG = {
    "name": "staging",
    "model": {"name": "FacebookAI/xlm-roberta-tiny-test"},
    "data": "hub",
    "intermediate": {"tasks": ["mnli"], "budgets": [0, 10]},
    "targets": {"xnli": {"languages": ["en", "sw"]}, "udpos": {"languages": ["en", "yo"]}},
    "seeds": [1],
    "selection": {"oracle": True},  # the oracle pass reads the target-language dev sets too
}


def new_store(s3_server):
    return open_store(f"s3://{s3_server.bucket}/staging-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def store(s3_server):
    return new_store(s3_server)


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("staging") / "staging.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return configs.load(str(path))[0]


@pytest.fixture(scope="module")
def hub():
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield fake_hub(monkeypatch)


@pytest.fixture(scope="module")
def staged(s3_server, config, hub, tmp_path_factory):
    """A store the stage job filled once: (store, what it staged, Hub calls it made)."""
    store = new_store(s3_server)
    done = stage.run(config, store, tmp_path_factory.mktemp("stage-work"))
    return store, done, list(hub)


def fake_hub(monkeypatch):
    """Hub stand-ins: datasets from the bundled mirror, a model snapshot in huggingface_hub's cache layout."""
    import datasets
    import huggingface_hub

    real = datasets.load_dataset
    calls = []

    def load_dataset(path, name=None, *args, **kwargs):
        if path in ("json", "parquet"):
            return real(path, name, *args, **kwargs)
        calls.append((path, name, kwargs.get("split")))
        file = BUNDLED / path / name / f"{kwargs['split']}.jsonl"
        if not file.is_file():
            raise ValueError(f'Unknown split "{kwargs["split"]}". Should be one of [\'test\'].')
        return real("json", data_files=str(file), split="train")

    def snapshot_download(repo_id, revision=None, allow_patterns=None, cache_dir=None, **kwargs):
        entry = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
        pinned = revision is not None and len(revision) == 40  # a commit: the cache needs no ref, as the Hub's
        commit = revision if pinned else "0123456789abcdef0123456789abcdef01234567"
        if not pinned:
            (entry / "refs").mkdir(parents=True)
            (entry / "refs" / (revision or "main")).write_text(commit)
        snapshot = entry / "snapshots" / commit
        snapshot.mkdir(parents=True)
        for name, content in (("config.json", '{"model_type": "xlm-roberta"}'), ("model.safetensors", "weights")):
            blob = entry / "blobs" / f"blob-{name}"
            blob.parent.mkdir(exist_ok=True)
            blob.write_text(content)
            (snapshot / name).symlink_to(Path("../../blobs") / blob.name)
        calls.append(("model", repo_id, revision))
        return str(snapshot)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return calls


def test_inputs_are_every_hub_split_the_plan_reads_and_its_model(config):
    splits, models = staging.inputs(config)
    names = {(s.dataset, s.config, s.split) for s in splits}
    assert ("nyu-mll/glue", "mnli", "train") in names and ("nyu-mll/glue", "mnli", "validation_matched") in names
    assert ("google/xtreme", "XNLI", "test") in names and ("google/xtreme", "XNLI", "validation") in names
    assert ("google/xtreme", "udpos.Yoruba", "test") in names and ("google/xtreme", "udpos.Yoruba", "validation") in names
    (model,) = models  # at the commit the plan pinned its ref to (xfer/revisions.py)
    assert model.name == "FacebookAI/xlm-roberta-tiny-test" and len(model.revision) == 40
    assert len({s.prefix for s in splits}) == len(splits)  # one prefix per split


def test_without_the_oracle_pass_no_target_language_dev_set_is_staged(tmp_path):
    path = tmp_path / "plain.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in CONFIG.items() if k != "selection"}))
    splits, _ = staging.inputs(configs.load(str(path))[0])
    names = {(s.dataset, s.config, s.split) for s in splits}
    assert ("google/xtreme", "XNLI", "test") in names and ("google/xtreme", "XNLI", "validation") not in names


def test_stage_once_then_offline_reads_come_from_the_store(config, staged, hub, tmp_path, monkeypatch):
    store, done, calls = staged
    splits, models = staging.inputs(config)
    assert len(done) == len(splits) + len(models) == len(calls) and not staging.missing(config, store)
    assert stage.run(config, store, tmp_path / "work2") == []  # nothing left: no Hub call
    hub_calls = len(hub)
    pins = build_plan(config).dataset_revisions()

    # a pod: offline, a Hub DataSource attached to the store reads the staged Parquet through the mirror path
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data = staging.attach(DataSource("hub"), store, tmp_path / "pod-cache")
    data.pin(pins)  # as jobs.run does: read at the plan's commits
    rows = data.load(tasks.get("xnli"), tasks.get("xnli").test, "sw")
    assert len(rows) and set(rows["language"]) == {"sw"} and len(hub) == hub_calls
    mirror = tmp_path / "pod-cache"
    assert list(mirror.rglob("google/xtreme/XNLI/test.parquet"))  # the local-mirror layout
    # a split the Hub does not have was staged as absent: reading it fails as it would against the Hub
    with pytest.raises(XferError, match="udpos.Yoruba validation.*not on the Hub"):
        data.load(tasks.get("udpos"), tasks.get("udpos").lang_dev, "yo")
    # a split nobody staged: one line saying so, no Hub call
    with pytest.raises(XferError, match="not staged in the store.*xfer stage"):
        data.load(tasks.get("pawsx"), tasks.get("pawsx").test, "de")
    # the job ids do not change: fingerprints still name the Hub coordinates
    assert data.fingerprint(tasks.get("xnli"), tasks.get("xnli").test, "sw").startswith("hub:google/xtreme:XNLI:test@")


def test_staged_model_is_found_offline_by_snapshot_download(config, staged, tmp_path):
    store = staged[0]
    (model,) = staging.inputs(config)[1]  # at the commit the plan pinned
    files = store.manifest(model.prefix)["files"]
    assert not any("/blobs/" in f for f in files) and len(files) == 2  # the two snapshot files of the commit
    cache = tmp_path / "pod-hf-cache"
    assert staging.fetch_model({"hub": model.name, "revision": model.revision}, store, cache) == \
        cache / model.cache_folder
    from huggingface_hub._snapshot_download import snapshot_download  # the real one, never the stand-in

    folder = Path(snapshot_download(model.name, revision=model.revision, cache_dir=cache, local_files_only=True))
    assert json.loads((folder / "config.json").read_text()) == {"model_type": "xlm-roberta"}
    assert staging.fetch_model({"store": "jobs/x/output"}, store, cache) is None  # not a Hub model


def test_hub_down_is_a_temporary_failure_and_the_token_is_never_printed(config, store, monkeypatch, capsys, tmp_path):
    import datasets

    class ConnectError(Exception):
        pass

    def unreachable(path, name=None, *args, **kwargs):
        raise ConnectError("All connection attempts failed")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(TemporaryFailure):
        stage.run(config, store, tmp_path / "work")
    path = tmp_path / "staging.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    monkeypatch.setenv("HF_TOKEN", "hf_secretsecretsecret")
    code = main(["stage", str(path), "--store", store.uri, "--work", str(tmp_path / "w")])
    out, err = capsys.readouterr()
    assert code == 75 and "temporary failure" in err and "hf_secret" not in out + err


def test_plan_pending_out_says_whether_staging_is_needed(staged, store, tmp_path):
    path = tmp_path / "staging.yaml"
    path.write_text(yaml.safe_dump(CONFIG))

    def stage_flag(store, label):
        with redirect_stdout(io.StringIO()):
            assert main(["plan", str(path), "--store", store.uri, "--pending-out", str(tmp_path / label)]) == 0
        return (tmp_path / label / "stage.json").read_text()

    assert stage_flag(store, "empty store") == "true"
    assert stage_flag(staged[0], "staged store") == "false"

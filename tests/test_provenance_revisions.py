"""Pinned revisions (xfer/revisions.py): a `data: hub` plan resolves every dataset and model ref to a commit
once, records it in the plan and the job parameters, and jobs read exactly that commit; offline, a plan needs
pins; a missing Parquet-conversion branch falls back to a Parquet main revision, and says so. The Hub is a
stand-in here (no network)."""

import hashlib
from types import SimpleNamespace

import pytest
from huggingface_hub import errors

import jobs
from xfer import cli, revisions, tasks
from xfer.config import parse
from xfer.data import DataSource
from xfer.errors import TemporaryFailure, XferError
from xfer.plan import build_plan

CONFIG = """
name: hubby
model: {name: FacebookAI/xlm-roberta-base}
data: hub
intermediate: {tasks: [mnli, hellaswag], budgets: [0, 10]}
targets: {xnli: {languages: [en, de]}, tatoeba: {languages: [de]}}
"""
XTREME_SHA = "a" * 40


def sha(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def http_error(cls, message="404"):
    return cls(message, response=SimpleNamespace(headers={}, request=None, status_code=404))


class Hub:
    """A Hub whose repos are `commits` {(repo, ref): sha}; a (repo, ref) missing there does not exist as a
    revision (a repo missing entirely does not exist); `files` {repo: [paths on main]}."""

    def __init__(self, commits=None, files=None, down=False):
        self.commits = dict(commits or {})
        self.files = dict(files or {})
        self.down = down
        self.calls = []

    def _info(self, repo_id, revision=None, **_):
        self.calls.append(("info", repo_id, revision))
        if self.down:
            raise ConnectionError("[Errno -2] Name or service not known")
        if not any(repo == repo_id for repo, _ in self.commits):
            raise http_error(errors.RepositoryNotFoundError)
        if (repo_id, revision) not in self.commits:
            raise http_error(errors.RevisionNotFoundError)
        return SimpleNamespace(sha=self.commits[(repo_id, revision)])

    dataset_info = model_info = _info

    def list_repo_refs(self, repo_id, repo_type=None, **_):
        self.calls.append(("refs", repo_id))
        branches = [SimpleNamespace(name=ref, ref=f"refs/heads/{ref}", target_commit=c)
                    for (repo, ref), c in self.commits.items() if repo == repo_id and "/" not in ref]
        converts = [SimpleNamespace(name="parquet", ref=ref, target_commit=c)
                    for (repo, ref), c in self.commits.items() if repo == repo_id and ref == revisions.PARQUET_REF]
        return SimpleNamespace(branches=branches, converts=converts, tags=[])

    def list_repo_files(self, repo_id, revision=None, repo_type=None, **_):
        self.calls.append(("files", repo_id, revision))
        return self.files.get(repo_id, [])


def every_repo(overrides=None):
    commits = {("nyu-mll/glue", "main"): sha("glue"), ("google/xtreme", "main"): XTREME_SHA,
               ("Rowan/hellaswag", revisions.PARQUET_REF): sha("hellaswag-parquet"),
               ("Rowan/hellaswag", "main"): sha("hellaswag-main"),
               ("FacebookAI/xlm-roberta-base", "main"): sha("xlmr")}
    commits.update(overrides or {})
    return {k: v for k, v in commits.items() if v is not None}


@pytest.fixture
def hub(monkeypatch):
    stand_in = Hub(every_repo())
    monkeypatch.setattr(revisions, "hub_api", lambda: stand_in)
    revisions.cache_clear()
    return stand_in


def plan_of(text=CONFIG):
    return build_plan(parse(text, "hubby.yaml"))


def fingerprints(job) -> str:
    return str(job.params.get("data"))


def test_plan_resolves_each_repo_once_and_records_the_commits(hub):
    plan = plan_of()
    infos = [c for c in hub.calls if c[0] == "info"]
    assert sorted(infos) == sorted([("info", "nyu-mll/glue", "main"), ("info", "google/xtreme", "main"),
                                    ("info", "Rowan/hellaswag", revisions.PARQUET_REF),
                                    ("info", "FacebookAI/xlm-roberta-base", "main")])
    doc = plan.to_json()
    assert doc["pins"] == {"nyu-mll/glue": sha("glue"), "google/xtreme": XTREME_SHA,
                           "Rowan/hellaswag": sha("hellaswag-parquet")}
    assert {(r["repo"], r["kind"], r["via"]) for r in doc["revisions"]} >= {
        ("FacebookAI/xlm-roberta-base", "model", "hub"), ("google/xtreme", "dataset", "hub")}
    # every job reading the Hub names the commits in its parameters
    (xnli,) = [j for j in plan.jobs if j.kind == "target" and j.params["from"] == "pretrained"]
    assert f"@{XTREME_SHA}[language=de]" in str(xnli.params["tasks"]["xnli"]["data"]["test"]["de"])
    assert f"@{sha('glue')}" in fingerprints(xnli)
    assert all(j.params["model"] == {"hub": "FacebookAI/xlm-roberta-base", "revision": sha("xlmr")}
               for j in plan.jobs if j.kind == "intermediate")
    plan_of()  # cached for the process: no further lookups
    assert len([c for c in hub.calls if c[0] == "info"]) == 4


def test_a_moved_ref_changes_the_ids_of_the_jobs_that_read_it(hub, monkeypatch):
    before = plan_of()
    monkeypatch.setattr(revisions, "hub_api", lambda: Hub(every_repo({("google/xtreme", "main"): "b" * 40})))
    revisions.cache_clear()
    after = plan_of()
    changed = {(j.kind, j.label) for j in after.jobs if j.id not in before.by_id}
    # intermediate training reads GLUE and HellaSwag only; every target and retrieval job reads google/xtreme
    assert {k for k, _ in changed} == {"target", "retrieval", "aggregate"}
    assert {j.id for j in before.stage("intermediate")} == {j.id for j in after.stage("intermediate")}


def test_pins_need_no_hub_and_change_the_fingerprint(hub):
    pinned = CONFIG + f"revisions: {{google/xtreme: {'c' * 40}}}\n"
    plan = plan_of(pinned)
    assert ("info", "google/xtreme", "main") not in hub.calls
    assert plan.to_json()["pins"]["google/xtreme"] == "c" * 40
    assert any(r.via == "pinned in the config" for r in plan.revisions)
    assert {j.id for j in plan.stage("evaluate")}.isdisjoint({j.id for j in plan_of().stage("evaluate")})


def test_offline_a_plan_needs_pins(hub, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(XferError, match=r"offline \(HF_HUB_OFFLINE is set\): cannot resolve dataset revisions of "
                                        r"Rowan/hellaswag, google/xtreme, nyu-mll/glue; pin them in the config: "
                                        r"revisions: \{Rowan/hellaswag: <commit sha>"):
        plan_of()
    pins = "revisions: {" + ", ".join(f"{r}: {c * 40}" for r, c in
                                      [("google/xtreme", "d"), ("nyu-mll/glue", "e"), ("Rowan/hellaswag", "f")]) + "}\n"
    with pytest.raises(XferError, match=r"model FacebookAI/xlm-roberta-base@main .*set model.revision: <commit sha>"):
        plan_of(CONFIG + pins)
    text = CONFIG.replace("xlm-roberta-base}", f"xlm-roberta-base, revision: {'c' * 40}}}") + pins
    plan = plan_of(text)
    assert hub.calls == []  # nothing asked the Hub
    assert {r.sha for r in plan.revisions} == {c * 40 for c in "cdef"}
    # through the CLI: one line, exit 2
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG)
    assert cli.main(["plan", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("xfer: error: offline") and "\n" not in err


def test_pins_are_validated(hub):
    with pytest.raises(XferError, match=r"revisions: google/xtreme: 'main' is not a commit sha"):
        plan_of(CONFIG + "revisions: {google/xtreme: main}\n")
    with pytest.raises(XferError, match=r"revisions: 'google/xtrem' is not a dataset this sweep reads"):
        plan_of(CONFIG + f"revisions: {{google/xtrem: {'a' * 40}}}\n")


def test_missing_parquet_branch_falls_back_to_a_parquet_main(hub, monkeypatch, caplog):
    commits = every_repo({("Rowan/hellaswag", revisions.PARQUET_REF): None})
    stand_in = Hub(commits, files={"Rowan/hellaswag": ["README.md", "data/train-00000-of-00001.parquet"]})
    monkeypatch.setattr(revisions, "hub_api", lambda: stand_in)
    plan = plan_of()
    (record,) = [r for r in plan.revisions if r.repo == "Rowan/hellaswag"]
    assert record.ref == revisions.PARQUET_REF and record.sha == sha("hellaswag-main")
    assert record.via.startswith("main: Rowan/hellaswag has no refs/convert/parquet branch")
    assert "reading main" in caplog.text
    (job,) = [j for j in plan.stage("intermediate") if j.params["task"] == "hellaswag"]
    assert f"@{sha('hellaswag-main')}" in fingerprints(job)

    revisions.cache_clear()
    stand_in.files["Rowan/hellaswag"] = ["hellaswag.py", "README.md"]
    with pytest.raises(XferError, match=r"dataset Rowan/hellaswag: no refs/convert/parquet branch, and its main "
                                        r"revision holds a loading script \(hellaswag.py\)"):
        plan_of()


@pytest.mark.parametrize("commits, down, error, match", [
    (every_repo({("google/xtreme", "main"): None, ("google/xtreme", "v1"): "d" * 40}), False, XferError,
     r"dataset google/xtreme@main: revision 'main' not found on the Hub"),
    ({k: v for k, v in every_repo().items() if k[0] != "nyu-mll/glue"}, False, XferError,
     r"dataset nyu-mll/glue@main: repository not found on the Hub"),
    (every_repo(), True, TemporaryFailure, r"cannot reach the Hub to resolve dataset .*ConnectionError.*to plan "
                                           r"offline, pin it in the config: revisions: \{"),
])
def test_hub_errors_are_one_line_naming_repo_and_ref(monkeypatch, commits, down, error, match):
    monkeypatch.setattr(revisions, "hub_api", lambda: Hub(commits, down=down))
    with pytest.raises(error, match=match) as caught:
        plan_of()
    assert "\n" not in str(caught.value)


def test_bundled_data_asks_the_hub_nothing(hub):
    bundled = CONFIG.replace("data: hub", "data: bundled").replace(
        "model: {name: FacebookAI/xlm-roberta-base}", "model: {build: {vocab_size: 300}}")
    plan = plan_of(bundled)
    assert hub.calls == [] and plan.revisions == []
    assert all("sha256:" in fingerprints(j) for j in plan.stage("intermediate"))


def test_jobs_read_the_plan_s_commits(hub, monkeypatch):
    import datasets

    asked = []

    def load_dataset(path, name=None, split=None, revision=None, **_):
        asked.append((path, name, split, revision))
        return datasets.Dataset.from_dict({"premise": ["a"], "hypothesis": ["b"], "label": [0]})

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    plan = plan_of()
    seen = []
    monkeypatch.setattr(jobs, "import_module", lambda name: SimpleNamespace(
        run=lambda job, ctx: seen.append(ctx.data.load(tasks.get("mnli"), tasks.get("mnli").train))))
    ctx = SimpleNamespace(config=parse(CONFIG, "hubby.yaml"), plan=plan, data=DataSource("hub"))
    jobs.run(plan.stage("intermediate")[0], ctx)
    assert seen and asked == [("nyu-mll/glue", "mnli", "train", sha("glue"))]
    # without a plan's pins a Hub source reads the declared ref, as before
    DataSource("hub").load(tasks.get("mnli"), tasks.get("mnli").train)
    assert asked[-1][3] is None


def test_a_pushed_config_is_pinned_so_pods_plan_it_offline(tmp_path, monkeypatch, capsys):
    """`xfer config push` of a config that reads the Hub stores it with every ref pinned (xfer/pin.py): an
    offline pod plans it without a Hub call, to the very job ids the online plan has."""
    from xfer import config as configs
    from xfer.store import open_store

    path = tmp_path / "hubby.yaml"
    path.write_text(CONFIG)
    online = build_plan(parse(CONFIG, "hubby.yaml"))
    assert cli.main(["config", "push", str(path), "--store", f"file://{tmp_path / 'store'}"]) == 0
    uri = capsys.readouterr().out.strip().splitlines()[-1]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pushed, _ = configs.load(uri)
    assert set(pushed.revisions) == {"nyu-mll/glue", "Rowan/hellaswag", "google/xtreme"}
    assert pushed.model.revision == next(r.sha for r in online.revisions if r.kind == "model")
    offline = build_plan(pushed)
    assert [j.id for j in offline.jobs if j.kind != "aggregate"] == [j.id for j in online.jobs if j.kind != "aggregate"]
    # a config without Hub inputs is stored byte for byte
    local = tmp_path / "local.yaml"
    local.write_text(CONFIG.replace("data: hub", "data: bundled").replace("FacebookAI/xlm-roberta-base",
                                                                           str(tmp_path)))
    assert cli.main(["config", "push", str(local), "--store", f"file://{tmp_path / 'store'}"]) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1].rsplit("/", 2)[-2:]
    assert open_store(f"file://{tmp_path / 'store'}").get_bytes("/".join(key)) == local.read_bytes()

"""Code fingerprints in job ids (xfer/fingerprint.py): an edited source file changes the ids of exactly the
jobs whose code it is, and of their dependants; reuse of old outputs happens only on purpose."""

import json
import shutil
from pathlib import Path

import pytest

from xfer import cli, fingerprint
from xfer.config import parse
from xfer.plan import build_plan, reusable_outputs
from xfer.store import LocalStore

ROOT = Path(__file__).parents[1]
DEMO = (ROOT / "configs" / "demo.yaml").read_text()


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A copy of the xfer and jobs sources that the fingerprints read instead of the real ones."""
    copy = tmp_path / "src"
    for package in ("xfer", "jobs"):
        shutil.copytree(ROOT / package, copy / package, ignore=shutil.ignore_patterns("hub", "__pycache__"))
    monkeypatch.setattr(fingerprint, "ROOT", copy)
    fingerprint.cache_clear()
    yield copy
    fingerprint.cache_clear()


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    fingerprint.cache_clear()


def demo_plan():
    return build_plan(parse(DEMO, "demo.yaml"))


def by_label(plan):
    return {(job.kind, job.label): job for job in plan.jobs}


def test_the_copy_fingerprints_like_the_real_tree(tree, monkeypatch):
    copied = [job.id for job in demo_plan().jobs]
    monkeypatch.setattr(fingerprint, "ROOT", ROOT)
    fingerprint.cache_clear()
    assert [job.id for job in demo_plan().jobs] == copied


def test_a_format_edit_changes_exactly_the_jobs_that_use_it_and_their_dependants(tree):
    before = demo_plan()
    edit(tree / "xfer" / "formats" / "classification.py", "def num_labels(task) -> int:\n",
         "EDITED = True\n\n\ndef num_labels(task) -> int:\n")
    after = demo_plan()
    old, new = by_label(before), by_label(after)
    assert old.keys() == new.keys()

    def uses_classification(job) -> bool:
        if job.kind == "aggregate":
            return True  # it depends on every job
        if job.kind == "intermediate":
            return job.params["task"] == "mnli"
        starts_from_mnli = str(job.params.get("from", "")).startswith("mnli@")
        return starts_from_mnli or job.kind == "target" and bool({"xnli", "pawsx"} & set(job.tasks))

    changed = {key for key in old if old[key].id != new[key].id}
    assert changed == {key for key, job in old.items() if uses_classification(job)}
    # named in the issue: these keep their ids
    kept = [job for job in before.jobs if (job.kind, job.label) not in changed]
    assert {j.params["task"] for j in kept if j.kind == "intermediate"} == {"squad", "hellaswag"}
    pretrained = {j.tasks for j in kept if j.params.get("from") == "pretrained"}
    assert {("udpos",), ("panx",), ("xquad", "mlqa"), ("tydiqa",), ("tatoeba",), ("bucc2018",)} <= pretrained
    assert ("xnli",) not in pretrained and ("pawsx",) not in pretrained
    # 2 mnli jobs; from each: 6 target, 2 retrieval jobs; xnli and pawsx from the 5 other starts; the aggregate
    assert len(changed) == 2 + 2 * (6 + 2) + 5 * 2 + 1
    assert new[("intermediate", "intermediate mnli budget=20 seed=1")].code != \
        old[("intermediate", "intermediate mnli budget=20 seed=1")].code


def test_comments_docstrings_and_layout_keep_the_ids(tree):
    before = [job.id for job in demo_plan().jobs]
    path = tree / "xfer" / "formats" / "classification.py"
    text = path.read_text()
    head, _, rest = text.partition('"""')
    _, _, rest = rest.partition('"""')
    path.write_text(head + '"""A rewritten module docstring."""\n# a new comment\n\n' + rest.replace("\n\n", "\n\n\n"))
    fingerprint.cache_clear()
    assert [job.id for job in demo_plan().jobs] == before


def test_a_shared_module_changes_every_id(tree):
    before = demo_plan()
    edit(tree / "xfer" / "tasks.py", "def get(name: str) -> Task:\n", "EDITED = 1\n\n\ndef get(name: str) -> Task:\n")
    after = demo_plan()
    assert not {j.id for j in before.jobs} & {j.id for j in after.jobs}


def test_library_versions_are_part_of_every_id(monkeypatch):
    before = demo_plan()
    real = fingerprint.metadata.version
    monkeypatch.setattr(fingerprint.metadata, "version", lambda name: "0.0.0-other" if name == "torch" else real(name))
    fingerprint.cache_clear()
    after = demo_plan()
    assert not {j.id for j in before.jobs} & {j.id for j in after.jobs}
    assert after.to_json()["libraries"]["torch"] == "0.0.0-other"
    fingerprint.cache_clear()


def test_format_modules_reach_only_the_jobs_of_their_tasks():
    formats = {"classification", "tagging", "span_qa", "multiple_choice", "retrieval"}
    for kind, used in [("build", set()), ("aggregate", set()), ("retrieval", {"retrieval"}),
                       ("target", {"span_qa"}), ("intermediate", {"classification", "multiple_choice"})]:
        files = fingerprint.job_files(kind, used)
        reached = {Path(f).stem for f in files if f.startswith("xfer/formats/")} & formats
        assert reached == used, kind  # formats/__init__.py imports no format module
        assert f"jobs/{kind}.py" in files and "jobs/__init__.py" in files


def test_static_imports_are_resolved(tmp_path):
    files = {
        "xfer/__init__.py": "",
        "xfer/a.py": "from . import b\nimport os\n",
        "xfer/b.py": "from .sub import c\nfrom xfer.sub import helper as h\n",
        "xfer/sub/__init__.py": "",
        "xfer/sub/c.py": "from ..d import thing\n",
        "xfer/sub/helper.py": "",
        "xfer/d.py": "def thing():\n    import xfer.e\n",
        "xfer/e.py": "",
        "xfer/unused.py": "",
        "jobs/__init__.py": "",
        "jobs/k.py": "from xfer import a\nfrom xfer.a import b as alias\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    reached = set(fingerprint.closure(("jobs.k",), tmp_path))
    assert reached == set(files) - {"xfer/unused.py"}
    assert "jobs/k.py" not in fingerprint.closure(("xfer.a",), tmp_path)


def commit_outputs(store, plan, jobs) -> None:
    for job in jobs:
        folder = Path(store.root).parent / "out" / job.id
        folder.mkdir(parents=True)
        (folder / "marker.txt").write_text(job.id)
        store.commit(job.output, folder)


def test_reuse_is_on_purpose_and_only_of_committed_outputs(tree, tmp_path):
    store = LocalStore(tmp_path / "store")
    old = demo_plan()
    done = [j for j in old.jobs if j.kind == "build" or j.kind == "intermediate" and j.params["task"] == "mnli"]
    commit_outputs(store, old, done)
    edit(tree / "xfer" / "train.py", "NO_DECAY = (", "EDITED = 1\nNO_DECAY = (")  # every job's code changes

    plain = demo_plan()
    assert not {j.id for j in old.jobs} & {j.id for j in plain.jobs}  # never reused by accident

    reused = build_plan(parse(DEMO, "demo.yaml"), reuse=reusable_outputs(old.to_json(), store.is_committed))
    taken = {j.id for j in reused.jobs if j.reused}
    assert taken == {j.id for j in done}  # the committed ones, under their old ids and codes
    assert all(j.code == old.by_id[j.id].code for j in reused.jobs if j.reused)
    # the rest: jobs whose code changed are new work under new ids; retrieval jobs do not run train.py, and from
    # a reused start they are the same work under the same id (no reuse needed)
    rest = [j for j in reused.jobs if not j.reused]
    kept = {(j.kind, j.label) for j in rest if j.id in old.by_id}
    starts = ("pretrained", "mnli@20", "mnli@80")
    assert kept == {("retrieval", f"retrieval {t} from {s}") for t in ("tatoeba", "bucc2018") for s in starts}
    assert "xfer/train.py" not in fingerprint.job_files("retrieval", ["retrieval"])
    mnli80 = next(j for j in done if j.kind == "intermediate" and j.params["budget"] == 80)
    assert any(j.params.get("model") == {"store": mnli80.output} for j in rest)


def test_cli_reuse_outputs_of(tree, tmp_path, capsys):
    config = ROOT / "configs" / "demo.yaml"
    store_uri = str(tmp_path / "store")
    assert cli.main(["plan", str(config)]) == 0
    old = json.loads(capsys.readouterr().out)
    (tmp_path / "old.json").write_text(json.dumps(old))
    build = next(j for j in old["jobs"] if j["kind"] == "build")
    store = LocalStore(tmp_path / "store")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("x")
    store.commit(f"jobs/{build['id']}/output", tmp_path / "b")
    edit(tree / "jobs" / "build.py", "def run(job, ctx) -> None:\n", "EDITED = 1\n\n\ndef run(job, ctx) -> None:\n")

    assert cli.main(["plan", str(config), "--store", store_uri]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert build["id"] not in {j["id"] for j in plain["jobs"]}
    assert cli.main(["plan", str(config), "--store", store_uri, "--reuse-outputs-of", str(tmp_path / "old.json")]) == 0
    again = json.loads(capsys.readouterr().out)
    (reused,) = [j for j in again["jobs"] if j.get("reused")]
    assert reused["id"] == build["id"] and reused["code"] == build["code"]
    # everything downstream of the build job keeps its old id too: only build.py changed
    assert [j["id"] for j in again["jobs"] if j["kind"] != "aggregate"] == \
        [j["id"] for j in old["jobs"] if j["kind"] != "aggregate"]
    assert cli.main(["plan", str(config), "--reuse-outputs-of", str(tmp_path / "missing.json")]) == 2
    assert "plan file not found" in capsys.readouterr().err

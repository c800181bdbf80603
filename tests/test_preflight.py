"""`xfer preflight CONFIG` (xfer/preflight.py): the demo passes; faults injected into a copy of the bundled
fixtures (a missing split, a wrong column type, out-of-range labels, misaligned answers) and an unwritable
store each fail in one line naming the split (or store) and the problem."""

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from xfer import cli, preflight, revisions
from xfer.config import parse
from xfer.data import BUNDLED
from xfer.plan import build_plan
from xfer.store import LocalStore

ROOT = Path(__file__).parents[1]
DEMO = ROOT / "configs" / "demo.yaml"


def rewrite(path: Path, change) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(change(i, row)) + "\n" for i, row in enumerate(rows)))


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """A local mirror of the fixtures with one fault per split, and a config reading those splits."""
    root = tmp_path_factory.mktemp("preflight")
    mirror = root / "hub"
    shutil.copytree(BUNDLED, mirror)
    xtreme = mirror / "google" / "xtreme"
    (xtreme / "PAN-X.de" / "test.jsonl").unlink()
    rewrite(xtreme / "PAN-X.es" / "test.jsonl", lambda i, row: {**row, "tokens": " ".join(row["tokens"])})
    rewrite(mirror / "nyu-mll" / "glue" / "mnli" / "train.jsonl",
            lambda i, row: {**row, "label": 7} if i in (3, 5, 8) else row)

    def shift(i, row):
        if i >= 10:
            return row
        answers = row["answers"]
        return {**row, "answers": {**answers, "answer_start": [s + 40 for s in answers["answer_start"]]}}

    rewrite(mirror / "rajpurkar" / "squad" / "plain_text" / "train.jsonl", shift)
    config = root / "broken.yaml"
    config.write_text(f"""
name: broken
model: {{build: {{vocab_size: 600, hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64}}}}
data: {mirror}
intermediate: {{tasks: [mnli, squad], budgets: [0, 10]}}
targets: {{panx: {{languages: [en, de, es]}}}}
""")
    (root / "a-file").write_text("not a folder")
    return SimpleNamespace(root=root, config=config, unwritable=root / "a-file" / "store")


def test_each_injected_fault_is_one_line_naming_the_split(broken, capsys):
    code = cli.main(["preflight", str(broken.config), "--store", str(broken.unwritable),
                     "--work", str(broken.root / "work")])
    out = capsys.readouterr().out
    assert code == 1
    failures = [line for line in out.splitlines() if line.startswith("fail: ")]
    expected = {
        "missing split": ("data: panx test de (google/xtreme PAN-X.de test): no data for google/xtreme PAN-X.de "
                          "test"),
        "wrong column type": ("data: panx test es (google/xtreme PAN-X.es test): "
                              f"{broken.root / 'hub' / 'google' / 'xtreme' / 'PAN-X.es' / 'test.jsonl'}:1: column "
                              "'tokens': 'María Mensah nació en Lagos .' is not a list of strings"),
        "out-of-range label": ("data: mnli train en (nyu-mll/glue mnli train): 3 rows with labels out of range "
                               "(e.g. 7;"),
        "misaligned answer": ("data: squad train en (rajpurkar/squad plain_text train): 10 rows with answers not "
                              "at answer_start (0 repairable, 10 would be dropped): more than 1% of the rows"),
        "unwritable store": f"store: {broken.unwritable}: ",
    }
    for fault, text in expected.items():
        assert len([line for line in failures if text in line]) == 1, (fault, failures)
    # the plan cannot be made either (it fingerprints the missing file); everything else passes
    assert {line.split(":")[1].strip() for line in failures} == {"data", "store", "plan"}
    assert "data: panx test en (google/xtreme PAN-X.en test)" not in "\n".join(failures)
    assert "encoder into the span_qa head" in out and "round trip en" in out
    assert out.strip().splitlines()[-1].endswith(f"{len(failures)} failed, 0 warnings")


def test_the_demo_passes_using_the_committed_build_output(tmp_path, capsys):
    from xfer.config import TinyModel, load

    config, _ = load(str(DEMO))
    build = build_plan(config).stage("build")[0]
    store = LocalStore(tmp_path / "store")
    store.commit(build.output, preflight._tiny_model(TinyModel(**build.params["tiny"]), tmp_path / "model"))
    code = cli.main(["preflight", str(DEMO), "--store", str(tmp_path / "store"), "--work", str(tmp_path / "work")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"the build job's committed output ({build.id})" in out
    summary = out.strip().splitlines()[-1]
    assert summary.startswith("preflight: ") and " 0 failed" in summary
    # the demo's only warnings: UD POS has no Yoruba and Kazakh dev sets (the oracle selection skips them)
    warnings = [line for line in out.splitlines() if line.startswith("warn: ")]
    assert len(warnings) == 2 and all("udpos lang_dev" in line for line in warnings)
    assert not LocalStore(tmp_path / "store").list("preflight/")  # the probe is gone


def test_a_config_that_does_not_load_is_exit_2(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("name: x\n")
    assert cli.main(["preflight", str(tmp_path / "bad.yaml")]) == 2
    assert capsys.readouterr().err.startswith("xfer: error: ")


def test_hub_revisions_are_checked_and_the_parquet_fallback_is_said(monkeypatch):
    class Hub:
        def dataset_info(self, repo_id, revision=None, **_):
            if repo_id == "Rowan/hellaswag" and revision == revisions.PARQUET_REF:
                from huggingface_hub import errors

                raise errors.RevisionNotFoundError("404", response=SimpleNamespace(headers={}, request=None))
            return SimpleNamespace(sha="e" * 40)

        def list_repo_refs(self, repo_id, **_):
            return SimpleNamespace(converts=[], branches=[SimpleNamespace(name="main", target_commit="f" * 40)])

        def list_repo_files(self, repo_id, **_):
            return ["data/train-00000-of-00001.parquet"]

    monkeypatch.setattr(revisions, "hub_api", Hub)
    cfg = parse("name: h\nmodel: {name: x/y}\nintermediate: {tasks: [mnli, hellaswag], budgets: [0]}\n"
                "targets: {xnli: {languages: [de]}}\n", "h.yaml")
    pins = {}
    checks = {c.subject: c for c in preflight._revision_checks(cfg, pins)}
    assert set(checks) == {"dataset nyu-mll/glue@main", "dataset google/xtreme@main",
                           f"dataset Rowan/hellaswag@{revisions.PARQUET_REF}"}
    fallback = checks[f"dataset Rowan/hellaswag@{revisions.PARQUET_REF}"]
    assert fallback.status == "warn" and fallback.detail.startswith("f" * 40 + " (main: ")
    assert pins[("Rowan/hellaswag", revisions.PARQUET_REF)] == "f" * 40
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    revisions.cache_clear()
    offline = preflight._revision_checks(cfg, {})
    assert all(c.status == "fail" and "pin it in the config: revisions: {" in c.detail for c in offline)


def test_feature_types_as_the_hub_declares_them():
    import datasets as ds

    assert preflight.describe(ds.ClassLabel(names=["a", "b"])) == "int"
    assert preflight.describe(ds.Sequence(ds.Value("string"))) == "list[string]"
    squad = ds.Features({"answers": ds.Sequence({"text": ds.Value("string"), "answer_start": ds.Value("int32")})})
    assert preflight.describe(squad["answers"]) == "struct{answer_start: list[int], text: list[string]}"
    assert preflight.describe(ds.List(ds.ClassLabel(names=["O"]))) == "list[int]"


def test_exit_codes():
    ok, warn = preflight.Check("data", "a"), preflight.Check("data", "b", "warn")
    hub_down = preflight.Check("revision", "c", "fail", "cannot reach the Hub", temporary=True)
    broken = preflight.Check("data", "d", "fail", "column missing")
    assert preflight.exit_code([ok, warn]) == 0
    assert preflight.exit_code([ok, hub_down]) == 75  # only the network failed: run it again
    assert preflight.exit_code([hub_down, broken]) == 1

"""Bad configs fail before any work, with one line naming the file, the field and the value."""

from pathlib import Path

import pytest

from xfer import cli
from xfer.config import load, parse
from xfer.errors import XferError

DEMO = Path(__file__).parents[1] / "configs" / "demo.yaml"


def test_demo_config_is_valid():
    config, sha = load(str(DEMO))
    assert config.name == "demo" and len(sha) == 64
    assert config.languages("xnli") == ("en", "de", "es", "sw")
    assert config.intermediate.budgets[0] == 0


def test_defaults_follow_xtreme_and_jiant():
    config = parse("""
name: t
model: {name: FacebookAI/xlm-roberta-large}
intermediate: {tasks: [mnli], budgets: [0]}
targets: {xnli: {}, panx: {}, xquad: {}}
""", "t.yaml")
    assert len(config.languages("xnli")) == 15 and len(config.languages("panx")) == 40
    xnli = config.target_hparams_for("xnli")
    assert (xnli.lr, xnli.warmup, xnli.weight_decay, xnli.epochs, xnli.batch_size) == (1e-5, 0.1, 0.01, 2, 32)
    assert config.target_hparams_for("xquad").max_length == 384
    assert config.target_hparams_for("panx").epochs == 10
    name, langs, criterion = config.low_resource_set()
    assert name == "panx-1k" and langs == {"jv", "kk", "my", "sw", "te", "yo"} and "1,000" in criterion


@pytest.mark.parametrize("edit, expected", [
    (("[0, 20, 80]", "[0, -5]"), "intermediate.budgets[1]: budget -5 is negative"),
    (("tasks: [mnli,", "tasks: [mnlii,"), "intermediate.tasks[0]: unknown intermediate task 'mnlii'"),
    (("xnli: {languages: [en, de, es, sw]}", "xnli: {languages: [en, xx]}"),
     "xnli.languages[1]: 'xx' is not a language of xnli"),
    (("targets:", "tagrets:"), "tagrets: unknown field"),
    (("name: demo\n", ""), "name: required field is missing"),
    (("xquad: {languages", "squad: {languages"), "unknown target task 'squad'"),
    (("low_resource: panx-1k", "low_resource: panx-2k"), "unknown preset 'panx-2k'"),
    (("epochs: 6", "epochs: -1"), "target_hparams"),
    (("epochs: 6", "epoch: 6"), "unknown hyperparameter 'epoch'"),
    (("budgets: [0, 20, 80]", "budgets: [0, 20, 80"), "malformed YAML"),
])
def test_bad_config_is_one_clear_line(tmp_path, capsys, edit, expected):
    text = DEMO.read_text()
    assert edit[0] in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace(edit[0], edit[1], 1))
    code = cli.main(["plan", str(bad)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"xfer: error: {bad}") and expected in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_missing_config_file(capsys):
    assert cli.main(["plan", "no/such.yaml"]) == 2
    assert capsys.readouterr().err == "xfer: error: config file not found: no/such.yaml\n"


def test_malformed_yaml_names_the_line():
    with pytest.raises(XferError, match=r"^c.yaml:2: malformed YAML: mapping values are not allowed here$"):
        parse("name: x\nmodel: a: b\n", "c.yaml")

"""Bad input is rejected before any work, in one line naming the file, the field and the value; the CLI never
prints a traceback for a user's input or environment (docs/validation.md)."""

import errno
import json
import os
from pathlib import Path

import pytest

from xfer import cli, tasks
from xfer.config import parse
from xfer.data import DataSource
from xfer.errors import Preempted, XferError
from xfer.uris import check_endpoint_url, check_store_uri, redact

DEMO = Path(__file__).parents[1] / "configs" / "demo.yaml"
RESULTS = Path(__file__).parent / "data" / "xlmr_large_xnli.csv"


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("xfer: error: ")
    return err.removeprefix("xfer: error: ").rstrip("\n")


# ---- the sweep config ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("edit, expected", [
    (("lr: 1.0e-3", "lr: .inf"), "intermediate.hparams.lr: Input should be a finite number (value: inf)"),
    (("lr: 1.0e-3", "lr: .nan"), "intermediate.hparams.lr: Input should be a finite number (value: nan)"),
    (("epochs: 6", "epochs: .inf"), "target_hparams.epochs: Input should be a finite number (value: inf)"),
    (("epochs: 6", "epochs: 6, weight_decay: .inf"), "target_hparams.weight_decay: Input should be a finite number"),
    (("warmup: 0.1", "warmup: .nan"), "intermediate.hparams.warmup: Input should be a finite number"),
    (("epochs: 12", "epochs: 12, lr: .inf"), "targets.pawsx.hparams.lr: Input should be a finite number"),
    (("pretrain_steps: 300", "pretrain_steps: 300, pretrain_lr: .inf"), "model.build.pretrain_lr: Input should be a finite"),
    (("seeds: [1]", "seeds: [-1]"), "seeds[0]: Input should be greater than or equal to 0 (value: -1)"),
    (("seeds: [1]", "seeds: [18446744073709551616]"), "seeds[0]: Input should be less than 4294967296"),
    (("seeds: [1]", "seeds: [true]"), "seeds[0]: Input should be a valid integer (value: True)"),
    (("seed: 0}", "seed: -1}"), "model.build.seed: Input should be greater than or equal to 0 (value: -1)"),
    (("xnli: {languages: [en, de, es, sw]}", "xnli: {languages: []}"), "targets.xnli.languages: an empty list"),
    (("xnli: {languages: [en, de, es, sw]}", "xnli: {languages: [en, de, en]}"),
     "targets.xnli.languages: 'en' is listed twice"),
    (("low_resource: panx-1k", "low_resource: []"), "low_resource: an empty list of languages"),
    (("low_resource: panx-1k", "low_resource: [sw, yo, sw]"), "low_resource: 'sw' is listed twice"),
    (("store: file://.xfer/store", "store: s3:/bucket/x"), "store: not a store URI (use s3://bucket[/prefix], "
                                                           "file://PATH or a plain folder path) (value: 's3:/bucket/x')"),
    (("store: file://.xfer/store", "store: s3//bucket/x"), "store: not a store URI"),
    (("store: file://.xfer/store", "store: S3://bucket"), "store: the scheme must be lower-case 's3://'"),
    (("store: file://.xfer/store", "store: gs://bucket/x"), "store: unsupported scheme 'gs'"),
    (("store: file://.xfer/store", "store: s3://bucket//x"), "store: invalid store prefix"),
    (("seeds: [1]\n", "seeds: [1]\nseeds: [2]\n"), ":26: malformed YAML: duplicate key 'seeds' (first given on line 25)"),
    (("batch_size: 16, max_length: 128, warmup", "batch_size: 16, max_length: 128, batch_size: 8, warmup"),
     ":13: malformed YAML: duplicate key 'batch_size' (first given on line 13)"),
    (("  xquad: {languages: [en, de, es]}\n", "  xquad: {languages: [en, de, es]}\n  xnli: {}\n"),
     "malformed YAML: duplicate key 'xnli' (first given on line 15)"),
])
def test_bad_value_is_one_line_naming_file_field_and_value(tmp_path, capsys, edit, expected):
    text = DEMO.read_text()
    assert edit[0] in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace(edit[0], edit[1], 1))
    assert cli.main(["plan", str(bad)]) == 2
    line = one_error_line(capsys)
    assert line.startswith(str(bad)) and expected in line


def test_null_or_omitted_languages_still_mean_xtreme_s_list():
    base = "name: t\nmodel: {name: FacebookAI/xlm-roberta-large}\nintermediate: {tasks: [mnli], budgets: [0]}\n"
    config = parse(base + "targets: {xnli: {languages: null}, pawsx: {}}\n", "t.yaml")
    assert config.languages("xnli") == tasks.get("xnli").languages
    assert config.languages("pawsx") == tasks.get("pawsx").languages
    assert parse(base + "targets: {xnli: {}}\nseeds: [0, 4294967295]\n", "t.yaml").seeds == [0, 2**32 - 1]


def test_yaml_merge_keys_are_not_duplicates():
    config = parse("name: t\nmodel: {name: m}\n"
                   "intermediate: {tasks: [mnli], budgets: [0], hparams: &h {lr: 1.0e-3, batch_size: 8}}\n"
                   "targets: {xnli: {hparams: {<<: *h, lr: 2.0e-3}}}\n", "t.yaml")
    assert config.target_hparams_for("xnli").lr == 2.0e-3 and config.target_hparams_for("xnli").batch_size == 8


def test_config_that_is_not_utf8_names_the_byte(tmp_path, capsys):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(DEMO.read_bytes().replace(b"name: demo", "name: d\u00e9mo".encode("latin-1")))
    offset = DEMO.read_bytes().index(b"name: demo") + len("name: d")
    assert cli.main(["plan", str(bad)]) == 2
    assert one_error_line(capsys) == f"{bad}: not UTF-8 text (invalid continuation byte at byte {offset})"


def test_config_path_that_is_a_folder(tmp_path, capsys):
    assert cli.main(["plan", str(tmp_path)]) == 2
    assert one_error_line(capsys) == f"{tmp_path}: is a folder, not a config file"


def test_crlf_config_keeps_its_hash(tmp_path):
    from xfer.config import load

    crlf = tmp_path / "crlf.yaml"
    crlf.write_bytes(DEMO.read_bytes().replace(b"\n", b"\r\n"))
    assert load(str(crlf))[1] == load(str(DEMO))[1]  # as Path.read_text's universal newlines gave it


# ---- store URIs and the S3 endpoint ---------------------------------------------------------------------------

@pytest.mark.parametrize("uri", ["s3://my-bucket", "s3://my-bucket/some/prefix/", "s3://a.b-c/x", "file:///abs/dir",
                                 "file://relative/dir", "plain/dir", "./here", "/abs/dir", "reports//store"])
def test_store_uris_accepted(uri):
    assert check_store_uri(uri) == uri


@pytest.mark.parametrize("uri, problem", [
    ("s3:/bucket/x", "not a store URI"), ("s3//bucket/x", "not a store URI"), ("s3:bucket", "not a store URI"),
    ("S3://bucket", "the scheme must be lower-case 's3://'"), ("FILE:///x", "the scheme must be lower-case"),
    ("gs://bucket/x", "unsupported scheme 'gs' (use file:// or s3://)"), ("s3://", "missing the bucket name"),
    ("s3://Bucket", "invalid S3 bucket name 'Bucket'"), ("s3://b", "invalid S3 bucket name 'b'"),
    ("s3://bucket/a/../b", "invalid store prefix 'a/../b'"), ("s3://bucket/a//b", "invalid store prefix"),
    ("file://", "missing the folder path"), (" s3://bucket", "leading or trailing whitespace"),
])
def test_store_uris_refused_in_one_line(uri, problem):
    with pytest.raises(XferError) as err:
        check_store_uri(uri, "--store")
    assert str(err.value) == f"--store {uri!r}: " + str(err.value).split(": ", 1)[1] and problem in str(err.value)


@pytest.mark.parametrize("flag", ["--store", "$XFER_STORE"])
def test_a_bad_store_uri_writes_nothing_locally(tmp_path, monkeypatch, capsys, flag):
    monkeypatch.chdir(tmp_path)
    argv = ["config", "push", str(DEMO)]
    if flag == "--store":
        argv += ["--store", "s3:/bucket/x"]
    else:
        monkeypatch.setenv("XFER_STORE", "s3:/bucket/x")
    assert cli.main(argv) == 2
    assert one_error_line(capsys).startswith(f"{flag} 's3:/bucket/x': not a store URI")
    assert list(tmp_path.iterdir()) == []  # today: ./s3:/bucket/x/configs/<sha>.yaml


@pytest.mark.parametrize("url, problem", [
    ("not a url", "not a URL"), ("ftp://host:21", "scheme http:// or https://"), ("http://:9000", "has no host"),
    ("http://host:99999", "not a URL (Port out of range"), ("http://host:port", "not a URL"),
    ("http://AKIAEXAMPLE:s3cr3t-p@ss@minio:9000", "contains credentials"),
])
def test_a_bad_endpoint_url_is_one_line_without_credentials(monkeypatch, capsys, url, problem):
    monkeypatch.setenv("XFER_S3_ENDPOINT_URL", url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "unused")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "unused")
    assert cli.main(["config", "push", str(DEMO), "--store", "s3://bucket"]) == 2
    line = one_error_line(capsys)
    assert line.startswith("$XFER_S3_ENDPOINT_URL=") and problem in line
    assert "s3cr3t" not in line and "AKIAEXAMPLE" not in line


def test_endpoint_urls_accepted_and_redacted():
    for url in ("http://127.0.0.1:9000", "https://s3.eu-west-1.amazonaws.com", "http://minio.local/base"):
        assert check_endpoint_url(url) == url
    assert redact("http://user:pa/ss@word@host:9000") == "http://***@host:9000"
    assert redact("key:secret@host") == "***@host"


# ---- output folders -------------------------------------------------------------------------------------------

def aggregate(out) -> list[str]:
    return ["aggregate", "--results", str(RESULTS), "--out", str(out)]


def test_aggregate_out_on_a_file(tmp_path, capsys):
    target = tmp_path / "report.txt"
    target.write_text("keep me")
    assert cli.main(aggregate(target)) == 2
    assert one_error_line(capsys) == f"the report folder {target}: is a file, not a folder"
    assert cli.main(aggregate(target / "sub")) == 2
    assert one_error_line(capsys) == f"cannot write the report folder {target / 'sub'}: Not a directory"
    assert target.read_text() == "keep me"


def test_aggregate_out_not_writable(tmp_path, capsys):
    if os.geteuid() == 0:  # root writes anywhere a permission allows: /sys refuses new folders even to root
        out = Path("/sys/xfer-test-report")
        assert not out.exists()
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        out = locked / "report"
    assert cli.main(aggregate(out)) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"cannot write the report folder {out}") and line.endswith(
        ("Permission denied", "Operation not permitted"))


def test_aggregate_on_a_full_disk(tmp_path, capsys, monkeypatch):
    from xfer import report

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # what write() raises: no file name

    monkeypatch.setattr(report, "write_results_csv", full)
    assert cli.main(aggregate(tmp_path / "out")) == 2
    assert one_error_line(capsys) == f"cannot write the report folder {tmp_path / 'out'}: No space left on device"


def test_an_oserror_elsewhere_keeps_its_traceback(tmp_path, monkeypatch):
    """Only errors from the paths the user named become one line: anything else is a bug to see."""
    from xfer import report

    def bug(*args, **kwargs):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/opt/xfer/templates/missing")

    monkeypatch.setattr(report, "write_results_csv", bug)
    with pytest.raises(FileNotFoundError):
        cli.main(aggregate(tmp_path / "out"))


def test_plan_stages_out_on_a_file(tmp_path, capsys):
    target = tmp_path / "stages"
    target.write_text("")
    assert cli.main(["plan", str(DEMO), "--stages-out", str(target)]) == 2
    assert one_error_line(capsys) == f"the stage lists folder {target}: is a file, not a folder"


def test_xtreme_labels_out_below_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert cli.main(["xtreme-labels", str(DEMO), "--out", str(tmp_path / "file" / "labels")]) == 2
    line = one_error_line(capsys)
    assert line == f"{tmp_path / 'file'}: File exists (--out {tmp_path / 'file' / 'labels'})"


# ---- XTREME predictions ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("index", ["\u00b2", "\u0663", "\uff11"])  # superscript two, Arabic-Indic three, fullwidth one
def test_tatoeba_prediction_with_a_non_ascii_digit(tmp_path, capsys, index):
    for folder in ("labels", "predictions"):
        (tmp_path / folder / "tatoeba").mkdir(parents=True)
        (tmp_path / folder / "tatoeba" / "test-de.tsv").write_text("0\n1\n2\n", encoding="utf-8")
    bad = tmp_path / "predictions" / "tatoeba" / "test-de.tsv"
    bad.write_text(f"0\n{index}\n2\n", encoding="utf-8")
    assert cli.main(["xtreme-score", "--predictions", str(tmp_path / "predictions"),
                     "--labels", str(tmp_path / "labels"), "--languages", "labels"]) == 2
    assert one_error_line(capsys) == f"{bad}: line 2: expected a target sentence index, got {index!r}"


# ---- data files found at run time -----------------------------------------------------------------------------

MNLI = tasks.get("mnli")
ROW = {"premise": "A man sleeps.", "hypothesis": "A person rests.", "label": 0, "idx": 0}


def mirror(tmp_path, lines: list[str]) -> tuple[DataSource, Path]:
    path = tmp_path / "mirror" / "nyu-mll" / "glue" / "mnli" / "train.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return DataSource(str(tmp_path / "mirror")), path


def load_error(tmp_path, lines) -> tuple[str, Path]:
    source, path = mirror(tmp_path, lines)
    with pytest.raises(XferError) as err:
        source.load(MNLI, MNLI.train)
    assert "\n" not in str(err.value)
    return str(err.value), path


def test_empty_data_file(tmp_path):
    source, path = mirror(tmp_path, [])
    with pytest.raises(XferError, match="empty file"):
        source.load(MNLI, MNLI.train)  # today: a bare StopIteration
    assert load_error(tmp_path, ["", "  "])[0] == f"{path}: empty file (no rows)"


def test_a_bad_json_line_is_named(tmp_path):
    message, path = load_error(tmp_path, [json.dumps(ROW), json.dumps(ROW), '{"premise": "cut off', json.dumps(ROW)])
    assert message.startswith(f"{path}:3: malformed JSON")
    message, path = load_error(tmp_path, [json.dumps(ROW), "[1, 2]"])
    assert message == f"{path}:2: expected a JSON object per line, got list"


@pytest.mark.parametrize("column, value, expected", [
    ("label", 1.5, "1.5 is not an integer or a string"),
    ("label", 1.0, "1.0 is not an integer or a string"),
    ("label", True, "True is not an integer or a string"),
    ("premise", 7, "7 is not a string"),
    ("hypothesis", None, "None is not a string"),
])
def test_a_column_of_the_wrong_type_names_file_line_and_value(tmp_path, column, value, expected):
    rows = [dict(ROW), dict(ROW), dict(ROW, **{column: value})]
    message, path = load_error(tmp_path, [json.dumps(row) for row in rows])
    assert message.startswith(f"{path}:3: column {column!r}: {expected}")


def test_tagging_columns_are_checked_too(tmp_path):
    panx = tasks.get("panx")
    path = tmp_path / "m" / "google" / "xtreme" / "PAN-X.en" / "train.jsonl"
    path.parent.mkdir(parents=True)
    rows = [{"tokens": ["Ann", "runs"], "ner_tags": [1, 0], "langs": ["en", "en"]},
            {"tokens": ["Bo", "walks"], "ner_tags": [1.5, 0], "langs": ["en", "en"]}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(XferError) as err:
        DataSource(str(tmp_path / "m")).load(panx, panx.train)
    assert str(err.value).startswith(f"{path}:2: column 'ner_tags': [1.5, 0] is not a list of integers or strings")


def test_a_sigterm_while_loading_stays_a_preemption(tmp_path, monkeypatch):
    """A preemption raised inside `datasets` must reach the runner (exit 75), not become a data error."""
    import datasets

    def preempted(*args, **kwargs):
        raise Preempted("stopped by signal SIGTERM before any checkpoint could be taken")

    monkeypatch.setattr(datasets, "load_dataset", preempted)
    source, _ = mirror(tmp_path, [json.dumps(ROW)])
    with pytest.raises(Preempted):
        source.load(MNLI, MNLI.train)
    with pytest.raises(Preempted):  # today: "cannot load ... from the Hub: Preempted: ..." (a failed job)
        DataSource("hub").load(MNLI, MNLI.train)


# ---- labels ----

@pytest.mark.parametrize("values, row, shown", [([0, 1, -2], 2, "-2"), ([0, 1.5], 1, "1.5"), ([1.0], 0, "1.0"),
                                                ([0, 2, 3], 2, "3"), (["1.0"], 0, "'1.0'"), ([True], 0, "True")])
def test_labels_out_of_range_or_not_integers_name_dataset_split_row_and_value(values, row, shown):
    from xfer.formats.common import label_ids

    assert label_ids(MNLI, MNLI.train, [0, 2, -1, "1"]) == [0, 2, -1, 1]
    with pytest.raises(XferError) as err:
        label_ids(MNLI, MNLI.train, values)
    assert str(err.value).startswith(f"nyu-mll/glue mnli train row {row}: label {shown} ")

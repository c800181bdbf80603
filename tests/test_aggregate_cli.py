"""`xfer aggregate --results`: hand-written result tables (published numbers) reported like sweep results."""

import json
from pathlib import Path

from xfer import cli

PUBLISHED = Path(__file__).parent / "data" / "xlmr_large_xnli.csv"


def test_published_xlmr_xnli_averages_to_80_9(tmp_path, capsys):
    assert cli.main(["aggregate", "--results", str(PUBLISHED), "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    (row,) = summary["rows"]
    assert row["intermediate_task"] == "published-xlmr-large" and row["missing"] == []
    assert round(row["tasks"]["xnli"], 1) == 80.9
    assert row["low_resource"] == 73.9  # sw is the only panx-1k language in XNLI
    assert "80.9" in capsys.readouterr().out


def test_custom_low_resource_list(tmp_path):
    assert cli.main(["aggregate", "--results", str(PUBLISHED), "--low-resource", "sw,ur",
                     "--out", str(tmp_path)]) == 0
    (row,) = json.loads((tmp_path / "summary.json").read_text())["rows"]
    assert row["low_resource"] == (73.9 + 73.8) / 2


def test_needs_config_or_results(capsys):
    assert cli.main(["aggregate"]) == 2
    assert "needs a sweep CONFIG, or --results" in capsys.readouterr().err


def test_bad_results_file_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text(PUBLISHED.read_text().replace("89.1", "eighty"))
    assert cli.main(["aggregate", "--results", str(bad), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"xfer: error: {bad}:2:") and err.count("\n") == 1
    assert not (tmp_path / "r").exists()

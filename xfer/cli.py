"""The `xfer` command line: plan, run, job run, aggregate, config push, xtreme-score, xtreme-labels, gc (and
the cluster commands).

User mistakes and environment faults (a bad store URI or endpoint URL, an output folder that is a file, not
writable or full) print one line, `xfer: error: ...`, and exit 2, never a traceback; a job preempted by SIGTERM
exits 75 after committing a checkpoint; `xfer run` exits 75 when it was stopped (SIGTERM/SIGINT, or a store
that stayed unavailable) after listing the jobs it could not finish, and 1 when a job failed, in both cases
after the aggregate has reported what is missing.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path

from xfer.errors import Preempted, TemporaryFailure, XferError

EXIT_USAGE, EXIT_FAILED = 2, 1


def _store_uri(args, config) -> str:
    """The store: --store, else $XFER_STORE, else the config's `store` (validated with the config)."""
    from xfer.uris import check_store_uri

    if getattr(args, "store", None):
        return check_store_uri(args.store, "--store")
    if os.environ.get("XFER_STORE"):
        return check_store_uri(os.environ["XFER_STORE"], "$XFER_STORE")
    return config.store


def _open_store(args, config):
    from xfer.store import open_store
    from xfer.uris import endpoint_from_env

    uri = _store_uri(args, config)
    if uri.startswith("s3://"):
        endpoint_from_env()  # a malformed $XFER_S3_ENDPOINT_URL is one line, not boto3's traceback
    return open_store(uri)


# Errors of a write that name no file: a full disk or quota, a read-only or failing file system.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EIO})


def _within(filename, folder: Path) -> bool:
    """Whether `filename` is `folder`, inside it, or one of the folders it is to be created in."""
    path, root = Path(os.path.abspath(os.fsdecode(filename))), Path(os.path.abspath(folder))
    return path == root or root in path.parents or path in root.parents


@contextmanager
def _writing(folder: Path, what: str):
    """Writing into `folder`: an OSError there (or a disk error naming no file) becomes one XferError line
    naming the folder and the system's reason; any other OSError is left alone (a bug keeps its traceback)."""
    try:
        yield
    except OSError as exc:
        if exc.filename is not None and not _within(exc.filename, folder):
            raise
        if exc.filename is None and exc.errno not in DISK_ERRNOS:
            raise
        where = f" ({exc.filename})" if exc.filename is not None and Path(exc.filename) != folder else ""
        raise XferError(f"cannot write {what} {folder}{where}: {exc.strerror or exc}") from None


def _output_folder(folder: Path, what: str) -> Path:
    """Create the output folder `folder` before any work, or say in one line why it cannot be written."""
    if folder.exists() and not folder.is_dir():
        raise XferError(f"{what} {folder}: is a file, not a folder")
    with _writing(folder, what):
        folder.mkdir(parents=True, exist_ok=True)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise XferError(f"cannot write {what} {folder}: {os.strerror(errno.EACCES)}")
    return folder


def _load(args):
    from xfer import config as configs
    from xfer.plan import build_plan

    config, sha = configs.load(args.config)
    return config, build_plan(config, sha, _reuse(args, config))


def _load_for_cost(args):
    """The plan for `--cost`, made even where Hub revisions cannot be resolved (they do not change the cost)."""
    from xfer import config as configs
    from xfer import revisions
    from xfer.plan import build_plan

    config, sha = configs.load(args.config)
    with revisions.provisional() as missed:
        plan = build_plan(config, sha)
    if missed:
        print(f"note: {len(missed)} Hub revision(s) not resolved ({', '.join(r.repo for r in missed[:3])}"
              f"{', ...' if len(missed) > 3 else ''}): {missed[0].via.removeprefix('not resolved: ')}; job ids "
              "below are provisional, the cost does not depend on them", file=sys.stderr)
    return config, plan


def _reuse(args, config):
    """`--reuse-outputs-of OLD_PLAN.json`: the committed jobs of an earlier plan, taken over on purpose where
    only the code differs (docs/provenance.md)."""
    old = getattr(args, "reuse_outputs_of", None)
    if not old:
        return None
    from xfer.plan import read_plan_file, reusable_outputs
    from xfer.store import open_store

    table = reusable_outputs(read_plan_file(old), open_store(_store_uri(args, config)).is_committed)
    logging.getLogger("xfer").info("reusing the committed outputs of %d jobs of %s where only the code differs",
                                   len(table), old)
    return table


def _context(args, config, plan, report_dir=None, on_progress=None):
    from xfer.context import JobContext

    return JobContext(config, plan, _open_store(args, config), Path(args.work), report_dir, on_progress)


def _print_cost(args, config, plan) -> None:
    """`xfer plan --cost`: what the sweep will compute (xfer/cost.py), as a table (and JSON with --cost-json)."""
    from rich.console import Console

    from xfer import cost

    lines, meta = cost.estimate(config, plan)
    Console(width=200).print(cost.table(lines, meta, args.mfu, args.peak_tflops,
                                        f"what sweep '{config.name}' will compute ({len(plan.jobs)} jobs)"))
    if args.cost_json:
        Path(args.cost_json).write_text(json.dumps(cost.as_json(lines, meta, args.mfu, args.peak_tflops), indent=1))


def cmd_plan(args) -> int:
    if args.cost and not (args.pending_out or args.stages_out):
        config, plan = _load_for_cost(args)
        _print_cost(args, config, plan)
        return 0
    config, plan = _load(args)
    if args.pending_out:
        _write_pending(args, config, plan)
    if args.cost:
        _print_cost(args, config, plan)
        return 0
    if args.stages_out:
        from xfer.plan import STAGES

        out = _output_folder(Path(args.stages_out), "the stage lists folder")
        with _writing(out, "the stage lists folder"):
            for stage in STAGES:
                (out / f"{stage}.json").write_text(json.dumps([job.id for job in plan.stage(stage)]))
    json.dump(plan.to_json(), sys.stdout, indent=1)
    print()
    return 0


def _write_pending(args, config, plan) -> None:
    """--pending-out: what is not committed yet, grouped by start, and whether the stage job has work."""
    from xfer import schedule, staging
    from xfer.store import open_store

    store = _open_store(args, config)
    schedule.write(schedule.pending(plan, store), Path(args.pending_out), stage=bool(staging.missing(config, store)))


def _print_report(summary: dict, report_dir: Path) -> None:
    from xfer.report import format_table

    print(format_table(summary))
    names = [name for name in ("results.csv", "results_oracle.csv", "summary.md", "summary.json", "plot.png")
             if (report_dir / name).exists()]
    names += sorted(p.name for p in report_dir.glob("heatmap-*.png")) + [p.name for p in [report_dir / "scatter.png"]
                                                                         if p.exists()]
    print(f"report: {report_dir}/ ({', '.join(names)})")


def cmd_run(args) -> int:
    from xfer.runner import LocalRunner, summary_line

    config, plan = _load(args)
    if args.workers < 1:
        raise XferError(f"--workers {args.workers}: give at least 1")
    report_dir = _output_folder(Path(args.out or f"reports/{config.name}"), "the report folder")
    store = _open_store(args, config)
    runner = LocalRunner(plan, config, store, Path(args.work), report_dir, workers=args.workers)
    outcomes = runner.run()
    failed = [o for o in outcomes if o.status in ("failed", "blocked") and not o.elsewhere]
    stopped = [o for o in outcomes if o.status == "stopped"]
    waiting = [o for o in outcomes if o.elsewhere]  # another runner holds them: a later run finishes them
    if (report_dir / "summary.json").is_file():
        _print_report(json.loads((report_dir / "summary.json").read_text()), report_dir)
    print(f"jobs: {summary_line(outcomes)}")
    for outcome in failed + stopped + waiting:
        print(f"  {outcome.status}: {outcome.job.label} ({outcome.job.id}): {outcome.reason}")
    if stopped:
        print(f"xfer: {len(stopped)} job(s) not finished; run the same command again to finish them",
              file=sys.stderr)
        return TemporaryFailure.exit_code
    return EXIT_FAILED if failed else TemporaryFailure.exit_code if waiting else 0


def cmd_job_run(args) -> int:
    from xfer.runner import run_job

    config, plan = _load(args)
    job = plan.by_id.get(args.job_id)
    if job is None:
        raise XferError(f"job {args.job_id!r} is not in the plan of {args.config}")
    report_dir = Path(args.out) if args.out else None
    ctx = _context(args, config, plan, report_dir)
    from xfer import staging
    from xfer.lease import if_running_mode

    staging.prepare(job, ctx)  # a staged Hub model into this pod's Hugging Face cache
    # a pod waits for a job another runner holds (never reports it done while it runs): $XFER_IF_RUNNING
    outcome = run_job(job, ctx, if_running=if_running_mode("wait"))
    print(f"{outcome.status}: {job.label} ({job.id})" + (f": {outcome.reason}" if outcome.reason else ""))
    if outcome.elsewhere:
        return TemporaryFailure.exit_code
    return EXIT_FAILED if outcome.status == "failed" else 0


def _low_resource(spec: str):
    from xfer.languages import LOW_RESOURCE_PRESETS
    from xfer.report import low_resource_set

    if spec in LOW_RESOURCE_PRESETS:
        return low_resource_set(spec)
    langs = frozenset(code.strip() for code in spec.split(",") if code.strip())
    if not langs or any(not code.isalpha() for code in langs):
        raise XferError(f"--low-resource {spec!r}: give a preset ({', '.join(LOW_RESOURCE_PRESETS)}) "
                        f"or a comma-separated list of language codes")
    return low_resource_set(sorted(langs), listed_in="the command line")


def cmd_aggregate(args) -> int:
    import jobs.aggregate
    from xfer import report

    tables = [report.read_results_csv(path) for path in args.results]
    extra = [row for table in tables for row in table]
    if args.config is None:
        if not extra:
            raise XferError("aggregate needs a sweep CONFIG, or --results FILE.csv, or both")
        report_dir = _output_folder(Path(args.out or "reports/results"), "the report folder")
        expected = [cell for table in tables for cell in report.table_cells(table)]  # each file its own seeds
        with _writing(report_dir, "the report folder"):
            summary = report.write_report(extra, expected, _low_resource(args.low_resource), report_dir,
                                          title="xfer results: " + ", ".join(Path(p).name for p in args.results))
    else:
        config, plan = _load(args)
        report_dir = _output_folder(Path(args.out or f"reports/{config.name}"), "the report folder")
        ctx = _context(args, config, plan, report_dir)
        with _writing(report_dir, "the report folder"):
            summary = jobs.aggregate.run(plan.stage("aggregate")[0], ctx, extra_rows=extra)
    _print_report(summary, report_dir)
    return 0


def cmd_config_push(args) -> int:
    from xfer import config as configs

    config, sha = configs.load(args.config)
    store = _open_store(args, config)
    if "://" in args.config:  # already in a store
        print(args.config)
        return 0
    from xfer.pin import push_key

    key, text = push_key(args.config, config)
    store.put_bytes(key, text)
    print(f"{store.uri.rstrip('/')}/{key}")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="xfer", description=__doc__.splitlines()[0])
    top.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = top.add_subparsers(dest="command", required=True)

    def with_config(p, positional=True):
        if positional:
            p.add_argument("config", help="sweep config: a YAML path or a store URI")
        p.add_argument("--store", help="store URI (overrides the config and $XFER_STORE)")
        p.add_argument("--work", default=os.environ.get("XFER_WORK", ".xfer/work"), help="local scratch folder")
        return p

    p = with_config(sub.add_parser("plan", help="print the jobs of a sweep as JSON"))
    p.add_argument("--stages-out", metavar="DIR", help="also write DIR/<stage>.json id lists (for Argo)")
    p.add_argument("--cost", action="store_true", help="print what the sweep will compute, not the plan")
    p.add_argument("--mfu", type=float, default=0.25, help="--cost: model FLOPs utilisation assumed (0.25)")
    p.add_argument("--peak-tflops", type=float, default=989.0,
                   help="--cost: the GPU's peak dense bf16 TFLOP/s (989: H100/H200 SXM)")
    p.add_argument("--cost-json", metavar="FILE", help="--cost: also write the estimate as JSON")
    p.add_argument("--reuse-outputs-of", metavar="OLD_PLAN.json",
                   help="take over the committed outputs of this earlier plan's jobs whose inputs are equal, "
                        "whatever code computed them (docs/provenance.md)")
    p.add_argument("--pending-out", metavar="DIR",
                   help="also write the jobs not committed yet, by start, to DIR (for Argo: xfer/schedule.py)")
    p.set_defaults(func=cmd_plan)

    p = with_config(sub.add_parser("run", help="run a whole sweep on this machine"))
    p.add_argument("--workers", type=int, default=int(os.environ.get("XFER_WORKERS", 1)))
    p.add_argument("--out", help="report folder (default reports/<name>)")
    p.add_argument("--reuse-outputs-of", metavar="OLD_PLAN.json",
                   help="take over the committed outputs of this earlier plan's jobs whose inputs are equal, "
                        "whatever code computed them (docs/provenance.md)")
    p.set_defaults(func=cmd_run)

    job = sub.add_parser("job", help="run one job of a plan").add_subparsers(dest="job_command", required=True)
    p = with_config(job.add_parser("run", help="run one job by id"), positional=False)
    p.add_argument("job_id")
    p.add_argument("--config", required=True, help="sweep config: a YAML path or a store URI")
    p.add_argument("--out", help="aggregate only: local report folder")
    p.add_argument("--reuse-outputs-of", metavar="OLD_PLAN.json",
                   help="take over the committed outputs of this earlier plan's jobs whose inputs are equal, "
                        "whatever code computed them (docs/provenance.md)")
    p.set_defaults(func=cmd_job_run)

    p = with_config(sub.add_parser("aggregate", help="write the report from the results in the store"),
                    positional=False)
    p.add_argument("config", nargs="?", help="sweep config: a YAML path or a store URI")
    p.add_argument("--results", action="append", default=[], metavar="FILE.csv",
                   help="also read rows in results.csv format (e.g. published numbers); repeatable")
    p.add_argument("--low-resource", default="panx-1k",
                   help="without CONFIG: a preset (panx-1k, panx-5k) or comma-separated language codes")
    p.add_argument("--out", help="report folder (default reports/<name>)")
    p.set_defaults(func=cmd_aggregate)

    cfg = sub.add_parser("config", help="configs in the store").add_subparsers(dest="config_command",
                                                                               required=True)
    p = with_config(cfg.add_parser("push", help="upload a config to <store>/configs/<sha256>.yaml"))
    p.set_defaults(func=cmd_config_push)

    try:
        from xfer import cluster
    except ImportError:
        cluster = None
    if cluster is not None:
        cluster.add_commands(sub)
    from jobs import stage
    from xfer import gc, preflight, xtreme

    stage.add_commands(sub)
    xtreme.add_commands(sub)
    preflight.add_commands(sub)
    gc.add_commands(sub)
    return top


# The path arguments of the commands, by their argparse names (a store URI is not a path: the store reports its
# own errors).
PATH_ARGUMENTS = {"config": "config", "out": "--out", "stages_out": "--stages-out", "work": "--work",
                  "results": "--results", "predictions": "--predictions", "labels": "--labels"}


def _named_path(args, exc: OSError) -> str | None:
    """'--flag VALUE' when the OSError's file is (inside) a path the user named on the command line, else None."""
    if exc.filename is None:
        return None
    for name, flag in PATH_ARGUMENTS.items():
        values = getattr(args, name, None)
        for value in values if isinstance(values, list) else [values]:
            if isinstance(value, str) and "://" not in value and _within(exc.filename, Path(value)):
                return f"{flag} {value}" if flag != "config" else f"config {value}"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        from rich.console import Console
        from rich.logging import RichHandler

        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s",
                            handlers=[RichHandler(show_path=False, console=Console(stderr=True))])
    except ImportError:  # pragma: no cover
        logging.basicConfig(level=logging.INFO)
    for noisy in ("httpx", "botocore", "urllib3", "datasets", "filelock", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return args.func(args)
    except OSError as exc:  # reading or writing a path named on the command line: the user's to fix
        named = _named_path(args, exc)
        if named is None:
            raise
        print(f"xfer: error: {exc.filename}: {exc.strerror or exc} ({named})", file=sys.stderr)
        return EXIT_USAGE
    except XferError as exc:
        print(f"xfer: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Preempted as exc:
        print(f"xfer: preempted: {exc}", file=sys.stderr)
        return Preempted.exit_code
    except TemporaryFailure as exc:
        print(f"xfer: temporary failure, run again later: {exc}", file=sys.stderr)
        return TemporaryFailure.exit_code
    except KeyboardInterrupt:
        print("xfer: interrupted; committed outputs and checkpoints are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

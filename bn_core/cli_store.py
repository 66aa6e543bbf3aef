"""CLI commands around the run store and datasets: ``submit``, ``runs``, ``datasets``.

``submit`` queues a run through the same job runner the dashboard uses (so it lands in the
store at ``$BN_LAB_HOME`` and shows up in the dashboard); ``--wait`` also drives the runner
until the run ends. ``runs`` lists the store. ``datasets`` says where each dataset would be
loaded from, and ``--fetch`` downloads what is missing (used to bake data into the image).
"""

from __future__ import annotations

import argparse
import json

from bn_core import data
from bn_core.config import TrainConfig

EXIT_FOR_STATUS = {"completed": 0, "failed": 1, "diverged": 3, "cancelled": 130, "interrupted": 1}


def add_commands(commands, add_config_flags, formatter) -> None:
    submit = commands.add_parser(
        "submit", help="queue a run in the run store ($BN_LAB_HOME)", formatter_class=formatter
    )
    add_config_flags(submit)
    submit.add_argument("--wait", action="store_true", help="run the queue until this run ends")
    submit.add_argument("--json", action="store_true", help="print the run as one JSON object")

    runs = commands.add_parser(
        "runs", help="list the runs in the run store", formatter_class=formatter
    )
    runs.add_argument("--json", action="store_true", help="print one JSON list")

    datasets = commands.add_parser(
        "datasets", help="where each dataset is found; --fetch downloads", formatter_class=formatter
    )
    datasets.add_argument(
        "--data-dir", dest="data_dir", default=None, help="extra folder to search"
    )
    datasets.add_argument("--fetch", action="store_true", help="download what is not found locally")


def cmd_submit(config: TrainConfig, wait: bool, as_json: bool) -> int:
    from bn_core.jobs import JobRunner
    from bn_core.store import RunStore

    runner = JobRunner(RunStore())
    (run_id,) = runner.submit([config])
    if wait:
        try:
            runner.wait([run_id])
        finally:
            runner.stop()
    run = runner.status(run_id)
    row = _run_row(run)
    print(json.dumps(row) if as_json else _run_line(row))
    return EXIT_FOR_STATUS.get(run.status, 0)


def cmd_runs(as_json: bool) -> int:
    from bn_core.store import RunStore

    rows = [_run_row(run) for run in RunStore().list_runs()]
    if as_json:
        print(json.dumps(rows))
    elif not rows:
        print("no runs yet")
    else:
        print("\n".join(_run_line(r) for r in rows))
    return 0


def cmd_datasets(data_dir: str | None, fetch: bool) -> int:
    """Raises DatasetError (exit 1) if --fetch cannot get a dataset."""
    for name in data.DATASETS:
        where = data.locate(name, data_dir)
        if where is None and fetch:
            where = data.load_raw(name, data_dir).source
        print(f"{name}: {where or 'not found locally; downloaded at first use'}")
    return 0


def _run_row(run) -> dict:
    return {
        "id": run.id,
        "group": run.group_id,
        "variant": run.variant,
        "seed": run.seed,
        "status": run.status,
        "test_accuracy": run.test_accuracy,
        "error": run.error,
    }


def _run_line(row: dict) -> str:
    acc = "" if row["test_accuracy"] is None else f" test_accuracy={row['test_accuracy']:.4f}"
    err = f" ({row['error']})" if row["error"] else ""
    return f"#{row['id']} {row['variant']} seed={row['seed']} {row['status']}{acc}{err}"


def dispatch(args: argparse.Namespace, config: TrainConfig | None) -> int:
    if args.command == "submit":
        return cmd_submit(config, args.wait, args.json)
    if args.command == "runs":
        return cmd_runs(args.json)
    return cmd_datasets(args.data_dir, args.fetch)

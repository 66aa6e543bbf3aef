"""``submit`` (queue a run through the same job runner the dashboard uses, so it lands in the
store at ``$BN_LAB_HOME``; ``--wait`` also drives the runner until the run ends) and ``runs``
(list the store)."""

from __future__ import annotations

import json

from bn_core.cli.common import EXIT_CODES, add_config_flags, config_from_args
from bn_core.config import TrainConfig


def register(commands, formatter) -> None:
    submit = commands.add_parser(
        "submit", help="queue a run in the run store ($BN_LAB_HOME)", formatter_class=formatter
    )
    add_config_flags(submit)
    submit.add_argument("--wait", action="store_true", help="run the queue until this run ends")
    submit.add_argument("--json", action="store_true", help="print the run as one JSON object")
    submit.set_defaults(
        handler=lambda args: cmd_submit(config_from_args(args), args.wait, args.json)
    )

    runs = commands.add_parser(
        "runs", help="list the runs in the run store", formatter_class=formatter
    )
    runs.add_argument("--json", action="store_true", help="print one JSON list")
    runs.set_defaults(handler=lambda args: cmd_runs(args.json))


def cmd_submit(config: TrainConfig, wait: bool, as_json: bool) -> int:
    from bn_core.runs.runner import JobRunner
    from bn_core.runs.store import RunStore

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
    return EXIT_CODES.get(run.status, 0)


def cmd_runs(as_json: bool) -> int:
    from bn_core.runs.store import RunStore

    rows = [_run_row(run) for run in RunStore().list_runs()]
    if as_json:
        print(json.dumps(rows))
    elif not rows:
        print("no runs yet")
    else:
        print("\n".join(_run_line(r) for r in rows))
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

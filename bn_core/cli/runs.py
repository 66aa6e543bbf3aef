"""``submit`` (queue a run through the same job runner the dashboard uses, so it lands in the
store at ``$BN_LAB_HOME``; ``--wait`` also drives the runner until the run ends) and ``runs``
(list the store). ``runs delete|prune|rename|tag`` and ``groups`` are ``manage``'s."""

from __future__ import annotations

import json
import sys

from bn_core.cli import manage
from bn_core.cli.common import (
    EXIT_CODES,
    PROG,
    add_backend_flag,
    add_config_flags,
    cluster_for,
    config_from_args,
)
from bn_core.config import TrainConfig
from bn_core.results import NO_LEARNING_NOTE, no_learning
from bn_core.vocabulary import LEARNING, RunStatus


def register(commands, formatter) -> None:
    submit = commands.add_parser(
        "submit", help="queue a run in the run store ($BN_LAB_HOME)", formatter_class=formatter
    )
    add_config_flags(submit)
    add_backend_flag(submit)
    submit.add_argument("--wait", action="store_true", help="run the queue until this run ends")
    submit.add_argument("--json", action="store_true", help="print the run as one JSON object")
    submit.set_defaults(
        handler=lambda args: cmd_submit(
            config_from_args(args), args.wait, args.json, backend=args.backend
        )
    )

    runs = commands.add_parser(
        "runs",
        help="list the runs in the run store; delete, prune, rename or tag them",
        formatter_class=formatter,
    )
    runs.add_argument("--json", action="store_true", help="print one JSON list")
    runs.set_defaults(handler=lambda args: cmd_runs(args.json))
    manage.register_run_actions(
        runs.add_subparsers(dest="runs_action", metavar="ACTION"), formatter
    )
    manage.register_groups(commands, formatter)


def cmd_submit(config: TrainConfig, wait: bool, as_json: bool, backend: str | None = None) -> int:
    """Queue ``config`` on ``backend`` (``--backend``; a Ray cluster is checked first, so
    nothing is queued when none answers)."""
    from bn_core.runs.execution import JobRunner
    from bn_core.runs.store import RunStore

    name, cluster = cluster_for(backend)
    runner = JobRunner(RunStore(), kind="submit --wait", cluster=cluster)
    (run_id,) = runner.submit([config], backend=name)
    runner.cluster_claims = {run_id}  # it leaves when this run ends: it takes no other
    return report(runner, run_id, wait, as_json)


def report(runner, run_id: int, wait: bool, as_json: bool) -> int:
    """Drive ``runner`` until run ``run_id`` ends (``wait``), or say whether anything will
    start it; print the run (one line, or JSON) and return its exit code."""
    if wait:
        try:
            runner.wait([run_id])
        finally:
            runner.stop()
    run = runner.status(run_id)
    group = runner.store.group(run.group_id)
    row = _run_row(run, group.name if group else None, run.id in at_chance(runner.store, [run]))
    if not wait and run.status == RunStatus.QUEUED:
        row["note"] = queued_note(runner.store, run.backend_name)
    print(json.dumps(row) if as_json else _run_line(row))
    return EXIT_CODES.get(run.status, 0)


def queued_note(store, backend: str = "local") -> str:
    """Whether a queued run will start by itself: only while some runner is alive (for a
    Ray run: one that can reach the cluster too)."""
    live = store.live_runners()
    if backend == "ray":
        where = "for the Ray cluster"
        if live:
            return f"queued {where}; a running runner that reaches the cluster will start it"
        return (
            f"queued {where}; it will start when the dashboard or `bn-lab runner` runs with "
            "RAY_ADDRESS set (or use --wait)"
        )
    if live:
        kinds = ", ".join(sorted({r["kind"] for r in live}))
        return f"queued; a runner is running ({kinds}) and will start it"
    return "queued; it will start when the dashboard or `bn-lab runner` is running (or use --wait)"


def cmd_runs(as_json: bool) -> int:
    from bn_core.runs.execution import reap
    from bn_core.runs.store import RunStore, damage_note

    store = RunStore()  # damaged pages: one line (exit 4), not a partial listing
    if not store.read_only:
        reap(store)  # runs whose process died with no runner watching: say so
    names = {g.id: g.name for g in store.list_groups()}
    runs = store.list_runs()
    stuck = at_chance(store, runs)
    rows = [_run_row(run, names.get(run.group_id), run.id in stuck) for run in runs]
    for run_id, reason in store.damaged_runs():  # stderr: --json's output stays one list
        print(f"{PROG} runs: {damage_note(run_id, reason)}", file=sys.stderr)
    if as_json:
        print(json.dumps(rows))
    elif not rows:
        print("no runs yet")
    else:
        print("\n".join(_run_line(r) for r in rows))
    return 0


def at_chance(store, runs) -> set[int]:
    """The ids of ``runs`` that ended at chance (``bn_core.results.no_learning``, as the
    pages judge it: the test accuracy, else the last validation accuracy of the run's epochs)."""
    judged = [run.id for run in runs if run.status in LEARNING]
    val: dict[int, list] = {}
    for row in store.epoch_metrics(judged) if judged else []:
        val.setdefault(row["run_id"], []).append(row.get("val_accuracy"))
    return {
        run.id
        for run in runs
        if no_learning(run.status, run.test_accuracy, val.get(run.id, []), run.config.val_size)
    }


def _run_row(run, group_name: str | None, stuck: bool = False) -> dict:
    return {
        "id": run.id,
        "group": run.group_id,
        "group_name": group_name or run.group_id,
        "name": run.name,
        "tags": list(run.tag_list),
        "node": run.node,
        "backend": run.backend_name,
        "images_per_second": run.images_per_second,
        "variant": run.variant,
        "seed": run.seed,
        "status": run.status,
        "test_accuracy": run.test_accuracy,
        "no_learning": stuck,  # completed (or stopped) at chance: it learned nothing
        "error": run.error,
    }


def _run_line(row: dict) -> str:
    acc = "" if row["test_accuracy"] is None else f" test_accuracy={row['test_accuracy']:.4f}"
    err = f" ({row['error']})" if row["error"] else ""
    stuck = f" ({NO_LEARNING_NOTE})" if row.get("no_learning") else ""
    line = f"#{row['id']} {row['variant']} seed={row['seed']} {row['status']}{acc}{stuck}{err}"
    if row["name"]:
        line += f" name={manage.quoted(row['name'])}"
    if row["tags"]:
        line += f" tags={','.join(row['tags'])}"
    if row["node"]:
        line += f" node={row['node']}"
    if row.get("backend") == "ray":
        line += " backend=ray"
    line += f" group={manage.quoted(row['group_name'])}"
    return f"{line}: {row['note']}" if row.get("note") else line

"""``runner`` (a foreground queue worker: starts queued runs until stopped, for a terminal, a
systemd unit or a compose service) and ``resume RUN_ID`` (re-queue an interrupted or cancelled
run: it continues from its last completed epoch)."""

from __future__ import annotations

import signal
import sys
import threading
import time

from bn_core.cli.values import number, run_id_arg
from bn_core.vocabulary import ACTIVE, RunStatus


def register(commands, formatter) -> None:
    runner = commands.add_parser(
        "runner",
        help="start queued runs of the run store ($BN_LAB_HOME) until stopped",
        formatter_class=formatter,
        description="A foreground job runner: starts queued runs (at most --max-concurrent at "
        "once), marks runs whose process died as interrupted, and prints one line per run "
        "that starts or ends. Stops on Ctrl-C or SIGTERM; running workers go on and a later "
        "runner (or the dashboard) adopts them.",
    )
    runner.add_argument(
        "--max-concurrent",
        type=number(int),
        default=None,
        metavar="N",
        help="runs at once (default: $BN_LAB_MAX_CONCURRENT, else 1 on 2 cores, cores/2 above)",
    )
    runner.set_defaults(handler=cmd_runner)

    resume = commands.add_parser(
        "resume",
        help="re-queue an interrupted, cancelled or failed run: it continues from its last "
        "completed epoch",
        formatter_class=formatter,
        description="Queue run RUN_ID of the run store again, in the same record: its worker "
        "restores the checkpoint written at its last completed epoch (weights, optimizer "
        "state, BN's buffers, the epoch) and trains the remaining epochs, appending to its "
        "history; the result matches an uninterrupted run with the same seed. A run with no "
        "checkpoint yet starts over.",
    )
    resume.add_argument(
        "run_id", type=run_id_arg, metavar="RUN_ID", help="the run's id (see `runs`)"
    )
    resume.add_argument("--wait", action="store_true", help="run the queue until this run ends")
    resume.add_argument("--json", action="store_true", help="print the run as one JSON object")
    resume.set_defaults(handler=cmd_resume)


def cmd_resume(args) -> int:
    from bn_core.cli.runs import report
    from bn_core.runs.execution import JobRunner
    from bn_core.runs.store import RunStore

    runner = JobRunner(RunStore(), kind="resume --wait")
    runner.cluster_claims = {args.run_id}  # it leaves when this run ends: it takes no other
    print(runner.resume(args.run_id), file=sys.stderr)
    return report(runner, args.run_id, args.wait, args.json)


def cmd_runner(args) -> int:
    from bn_core.config import ConfigError
    from bn_core.runs.execution import JobRunner
    from bn_core.runs.store import RunStore

    if args.max_concurrent is not None and not 1 <= args.max_concurrent <= 256:
        raise ConfigError(f"--max-concurrent must be 1 to 256. Received: {args.max_concurrent}")
    store = RunStore()
    if store.read_only:
        message = f"runner: the run store {store.path} is read-only: nothing can start"
        print(message, file=sys.stderr)
        return 4
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    runner = JobRunner(store, max_concurrent=args.max_concurrent, kind="runner").start()
    from bn_core.runs.execution import ray_address

    cluster = ray_address()
    where = f"; runs queued for Ray go to {cluster}" if cluster else ""
    print(
        f"runner: store {store.path}, at most {runner.max_concurrent} run(s) at once here"
        f"{where} (Ctrl-C to stop)",
        file=sys.stderr,
        flush=True,
    )
    seen: dict[int, str] = {}
    try:
        while not stop.wait(1.0):
            _report_changes(store, seen)
    finally:
        runner.stop()
    print("runner: stopped (running workers go on)", file=sys.stderr)
    return 0


def _report_changes(store, seen: dict[int, str]) -> None:
    """One line per run that started or ended since the last look."""
    from bn_core.runs.store import StoreError

    try:
        runs = store.list_runs(ACTIVE) + [store.get(i) for i in seen if seen[i] in ACTIVE]
    except StoreError:
        return  # the scheduling thread says it, once
    for run in runs:
        if run is None or seen.get(run.id) == run.status:
            continue
        stamp = time.strftime("%H:%M:%S")
        detail = f" ({run.error})" if run.error and not run.active else ""
        if run.status != RunStatus.STARTING:  # queued -> starting -> running: say it once
            print(f"{stamp} run #{run.id} {run.variant} seed {run.seed}: {run.status}{detail}")
            sys.stdout.flush()
        seen[run.id] = run.status
    for run_id in [i for i, status in seen.items() if status not in ACTIVE]:
        del seen[run_id]

"""``study PRESET``: train a preset's grid (``bn_core.analysis.study.PRESETS``) in this
process, one run after another (data loaded once per distinct split), and write report.html,
summary.csv, curves.csv, results.json and a run store ``store/`` to ``--out``."""

from __future__ import annotations

import argparse
import functools
import json
import sys
import textwrap
import threading
import time
from pathlib import Path

from bn_core import data
from bn_core.cli.common import (
    ClusterUnavailable,
    CtrlC,
    add_backend_flag,
    check_data_dir,
    cluster_for,
    prepare_out,
    quiet_native_output,
)
from bn_core.config import TrainConfig, field_spec
from bn_core.runs.store import artifacts

CLUSTER_PATIENCE = 60.0  # seconds a study waits for a cluster that stopped answering


def register(commands, formatter) -> None:
    from bn_core.analysis.study import MAX_SEEDS, PRESETS, QUICK, preset_configs

    lines = []
    for p in PRESETS.values():
        runs, quick = len(preset_configs(p.name)), len(preset_configs(p.name, quick=True))
        head = f"{p.name}: {p.title}, {runs} runs (quick: {quick} runs, ~{p.quick_minutes:g} min)."
        lines.append(textwrap.fill(f"{head} {p.description}", 96, subsequent_indent="    "))
    raw = type("StudyFormatter", (argparse.RawDescriptionHelpFormatter, formatter), {})
    study = commands.add_parser(
        "study",
        help="a preset study (several variants and seeds) with an HTML report",
        formatter_class=raw,
        description="Train a preset's runs one after another in this process, then write\n"
        "report.html, summary.csv, curves.csv and results.json to --out.\n\nPresets:\n"
        + "\n".join(lines),
        epilog="Exit codes: 0 done (diverged runs are results of a study); 1 dataset error or "
        "a failed run (or one interrupted by a lost Ray node); 2 bad flags, or no Ray cluster "
        "for --backend ray; 130 cancelled (the report covers what was measured).",
    )
    study.add_argument(
        "preset", choices=list(PRESETS), metavar="PRESET", help=f"one of {', '.join(PRESETS)}"
    )
    study.add_argument(
        "--quick",
        action="store_true",
        help=f"the quick version: {QUICK['train_limit']:,} training and {QUICK['val_size']:,} "
        f"validation images, {QUICK['epochs']} epochs, fewer seeds (the test set stays whole)",
    )
    spec = field_spec("dataset")
    study.add_argument(
        "--dataset", default=spec["default"], choices=spec["choices"], help=spec["help"]
    )
    study.add_argument(
        "--data-dir", dest="data_dir", default=None, help=field_spec("data_dir")["help"]
    )
    seeds = ", ".join(f"{p.name} {p.seeds} ({p.quick_seeds} quick)" for p in PRESETS.values())
    study.add_argument(
        "--seeds",
        type=int,
        default=None,
        metavar="N",
        help=f"seeds per grid point, 0..N-1, N at most {MAX_SEEDS} (default: the preset's: "
        f"{seeds})",
    )
    study.add_argument("--out", required=True, help="folder for the report and CSVs")
    add_backend_flag(study)
    study.set_defaults(handler=_study)


def study_configs(args: argparse.Namespace) -> list[TrainConfig]:
    """The preset's configs for the parsed flags; ConfigError (exit 2) on bad values."""
    from bn_core.analysis.study import preset_configs

    return preset_configs(
        args.preset,
        quick=args.quick,
        dataset=args.dataset,
        data_dir=args.data_dir,
        seeds=args.seeds,
    )


@quiet_native_output
def _study(args: argparse.Namespace) -> int:
    configs = study_configs(args)
    check_data_dir(args.data_dir)
    _, cluster = cluster_for(args.backend)  # no cluster: one line, before --out is touched
    return cmd_study(args.preset, configs, prepare_out(args.out), cluster=cluster)


def cmd_study(preset: str, configs: list[TrainConfig], out: Path, cluster=None) -> int:
    """Train ``configs`` in order (or all at once on ``cluster``, a RayBackend), then write
    the report and tables (also after Ctrl-C)."""
    from bn_core.analysis.study import get_preset

    group = f"study-{preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    title = get_preset(preset).title
    train_all = _train_all if cluster is None else functools.partial(_on_cluster, cluster)
    results, store, run_ids = train_all(configs, out / "store", group, title)
    _write_outputs(preset, results, store, run_ids, out)
    statuses = {r["status"] for r in results}
    if "cancelled" in statuses:
        return 130
    return 1 if statuses & {"failed", "interrupted"} else 0  # interrupted: a node was lost


def _train_all(configs: list[TrainConfig], home: Path, group: str, title: str):
    """Train each config in this process (data loaded once per distinct split); stops after a
    cancelled run. Every run is also recorded in a run store at ``home``: the report's probe
    charts come from it, and `BN_LAB_HOME=OUT/store bash scripts/run.sh` shows the study. The
    store is created once the first split loaded (a bad dataset leaves nothing behind); its
    group is named ``title``. Returns (results, the store or None, run ids)."""
    from bn_core.cli import progress
    from bn_core.nn.training import train
    from bn_core.runs.execution import heartbeat, record_event
    from bn_core.runs.store import RunStore, owner

    results, split_key, splits, run_ids, store = [], None, None, [], None
    with CtrlC() as stop:
        for i, config in enumerate(configs, start=1):
            split = {
                "val_size": config.val_size,
                "train_limit": config.train_limit,
                "seed": config.seed,
            }
            key = (config.dataset, config.data_dir, *split.values())
            if key != split_key:  # configs come seed-major: each split is loaded once
                splits = None  # free the previous split before loading the next
                splits = data.load(config.dataset, config.data_dir, **split)
                split_key = key
            print(f"run {i}/{len(configs)}: {config.variant} seed {config.seed}", file=sys.stderr)
            store = store or RunStore(home)
            me = owner.current()  # this process owns the run: a runner sees it end if we die
            run_id = store.create_run(config, group, owner=me, group_name=title)
            run_ids.append(run_id)

            def on_event(event, bar=None, run_id=run_id, store=store):
                bar.on_event(event)
                if event["type"] != "end":
                    record_event(store, run_id, event)

            cancel = threading.Event()  # the dashboard's Cancel on this run
            with progress.Progress(config) as bar, heartbeat(store, run_id, me, cancel):
                sink = functools.partial(on_event, bar=bar)
                should_stop = lambda cancel=cancel: stop() or cancel.is_set()  # noqa: E731
                result = train(config, on_event=sink, should_stop=should_stop, splits=splits)
            store.transition(
                run_id,
                ("running",),
                result.status,
                held_by=me,
                finished_at=time.time(),
                error=result.error,
                test_loss=result.test_loss,
                test_accuracy=result.test_accuracy,
            )
            steps = len(splits.x_train) // config.batch_size
            results.append(
                {"run_id": i, "seed": config.seed, "steps_per_epoch": steps, **result.to_dict()}
            )
            print(progress.result_line(results[-1]), file=sys.stderr)
            if result.status == "cancelled":
                break
    return results, store, run_ids


def _on_cluster(cluster, configs: list[TrainConfig], home: Path, group: str, title: str):
    """Queue every config on ``cluster`` (a RayBackend) in the study's store at ``home`` and
    wait, this process being the head that records their events; Ctrl-C cancels the runs
    still going (a second one leaves at once). Returns what ``_train_all`` returns."""
    from bn_core.runs.execution import JobRunner, LocalProcessBackend
    from bn_core.runs.store import RunStore

    store = RunStore(home)
    here = LocalProcessBackend(store, standby=False)  # runs nothing here: no standby worker
    runner = JobRunner(store, here, kind="study", cluster=cluster)
    run_ids = runner.submit(configs, group_id=group, group_name=title, backend="ray")
    runner.cluster_claims = set(run_ids)  # this process leaves once they end: only them
    print(f"{len(run_ids)} runs queued on the Ray cluster ({cluster.address})", file=sys.stderr)
    seen: dict[int, str] = {}
    gone_since = None
    with CtrlC() as stop:
        runner.start()
        try:
            while True:
                if runner.cluster_problem and store.queued_for("ray"):
                    gone_since = gone_since or time.time()
                    if time.time() - gone_since > CLUSTER_PATIENCE:
                        for run_id in run_ids:
                            runner.cancel(run_id)
                        raise ClusterUnavailable(
                            f"{runner.cluster_problem}; the study's queued runs are cancelled"
                        )
                else:
                    gone_since = None
                runs = [store.get(i) for i in run_ids]
                for run in runs:
                    if run is not None and not run.active and run.id not in seen:
                        seen[run.id] = run.status
                        where = f" on {run.node}" if run.node else ""
                        print(
                            f"run #{run.id} {run.variant} seed {run.seed}: {run.status}{where}",
                            file=sys.stderr,
                        )
                if all(run is None or not run.active for run in runs):
                    break
                if stop():
                    for run_id in run_ids:
                        runner.cancel(run_id)
                time.sleep(0.5)
        finally:
            runner.stop()
    runs = [store.get(i) for i in run_ids]
    results = store.result_dicts([run for run in runs if run is not None])
    for i, (result, run) in enumerate(zip(results, runs, strict=False), start=1):
        result["run_id"], result["steps_per_epoch"] = i, run.steps_per_epoch
    return results, store, run_ids


def _write_outputs(preset: str, results: list[dict], store, run_ids: list[int], out: Path):
    """report.html, summary.csv, curves.csv and results.json, atomically; the summary on stdout."""
    from bn_core.analysis import comparison as cmp
    from bn_core.analysis.study import get_preset
    from bn_core.views.comparison import summary_display
    from bn_core.views.probes import report_figures
    from bn_core.views.report import build_report

    summary = cmp.variant_summary(results)
    title = f"BN Lab study: {get_preset(preset).title}"
    extra = report_figures(store, [store.get(i) for i in run_ids]) if store else []
    report = build_report(results, title=title, preset=preset, extra_figures=extra)
    artifacts.write_text(out / "report.html", report)
    artifacts.write_text(out / "summary.csv", summary.to_csv(index=False))
    curves = cmp.run_curves(cmp.label_arms(results))
    artifacts.write_text(out / "curves.csv", curves.to_csv(index=False))
    artifacts.write_text(out / "results.json", json.dumps(results, indent=2))
    print(summary_display(summary).to_string(index=False))
    print(
        f"\nwrote report.html, summary.csv, curves.csv, results.json to {out} (run store: store/)"
    )

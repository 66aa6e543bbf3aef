"""CLI commands beyond a single run: ``study``, and around the run store and datasets:
``submit``, ``runs``, ``datasets``.

``study PRESET`` trains a preset's grid (``bn_core.study.PRESETS``) in this process, one run
after another (data loaded once per distinct split), and writes report.html, summary.csv,
curves.csv and results.json.

``submit`` queues a run through the same job runner the dashboard uses (so it lands in the
store at ``$BN_LAB_HOME`` and shows up in the dashboard); ``--wait`` also drives the runner
until the run ends. ``runs`` lists the store. ``datasets`` says where each dataset would be
loaded from, and ``--fetch`` downloads what is missing (used to bake data into the image).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from bn_core import data
from bn_core.config import TrainConfig, field_spec

EXIT_FOR_STATUS = {"completed": 0, "failed": 1, "diverged": 3, "cancelled": 130, "interrupted": 1}


def add_study_command(commands, formatter) -> None:
    from bn_core.study import PRESETS, QUICK, preset_configs

    lines = []
    for p in PRESETS.values():
        runs, quick = len(preset_configs(p.name)), len(preset_configs(p.name, quick=True))
        head = f"{p.name}: {p.title}, {runs} runs (quick: {quick} runs, ~{p.quick_minutes:g} min)."
        lines.append(textwrap.fill(f"{head} {p.description}", 96, subsequent_indent="    "))
    raw = type("StudyFormatter", (argparse.RawDescriptionHelpFormatter, formatter), {})
    study = commands.add_parser(
        "study", help="a preset study (several variants and seeds) with an HTML report",
        formatter_class=raw,
        description="Train a preset's runs one after another in this process, then write\n"
        "report.html, summary.csv, curves.csv and results.json to --out.\n\nPresets:\n"
        + "\n".join(lines),
        epilog="Exit codes: 0 done (diverged runs are results of a study); 1 dataset error or "
        "a failed run; 2 bad flags; 130 cancelled (the report covers what was measured).",
    )  # fmt: skip
    study.add_argument("preset", choices=list(PRESETS), metavar="PRESET",
                       help=f"one of {', '.join(PRESETS)}")  # fmt: skip
    study.add_argument(
        "--quick", action="store_true",
        help=f"the quick version: {QUICK['train_limit']:,} training and {QUICK['val_size']:,} "
        f"validation images, {QUICK['epochs']} epochs, fewer seeds (the test set stays whole)",
    )  # fmt: skip
    spec = field_spec("dataset")
    study.add_argument("--dataset", default=spec["default"], choices=spec["choices"],
                       help=spec["help"])  # fmt: skip
    study.add_argument("--data-dir", dest="data_dir", default=None,
                       help=field_spec("data_dir")["help"])  # fmt: skip
    seeds = ", ".join(f"{p.name} {p.seeds} ({p.quick_seeds} quick)" for p in PRESETS.values())
    study.add_argument(
        "--seeds",
        type=int,
        default=None,
        metavar="N",
        help=f"seeds per grid point, 0..N-1 (default: the preset's: {seeds})",
    )
    study.add_argument("--out", required=True, help="folder for the report and CSVs")


def study_configs(args: argparse.Namespace) -> list[TrainConfig]:
    """The preset's configs for the parsed flags; ConfigError (exit 2) on bad values."""
    from bn_core.study import preset_configs

    return preset_configs(
        args.preset, quick=args.quick, dataset=args.dataset, data_dir=args.data_dir,
        seeds=args.seeds,
    )  # fmt: skip


def cmd_study(
    preset: str,
    configs: list[TrainConfig],
    out: Path,
    ctrl_c: Callable,
    write_atomic: Callable[[Path, str], None],
) -> int:
    """Train ``configs`` in order, then write the report and tables (also after Ctrl-C)."""
    from bn_core import comparison as cmp
    from bn_core import progress
    from bn_core.probes_view import report_figures
    from bn_core.report import build_report
    from bn_core.store import RunStore
    from bn_core.study import get_preset
    from bn_core.training import train
    from bn_core.worker import record_event

    # Every run is also recorded in a run store in the output folder: the report's probe
    # charts come from it, and `BN_LAB_HOME=OUT/store streamlit run app.py` shows the study.
    store = None  # created once the first data split loaded: a bad dataset leaves nothing
    group = f"study-{preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    results, split_key, splits, run_ids = [], None, None, []
    with ctrl_c() as stop:
        for i, config in enumerate(configs, start=1):
            key = (config.dataset, config.data_dir, config.val_size, config.train_limit,
                   config.seed)  # fmt: skip
            if key != split_key:  # configs come seed-major: each split is loaded once
                splits = None  # free the previous split before loading the next
                splits = data.load(config.dataset, config.data_dir, val_size=config.val_size,
                                   train_limit=config.train_limit, seed=config.seed)  # fmt: skip
                split_key = key
            print(f"run {i}/{len(configs)}: {config.variant} seed {config.seed}", file=sys.stderr)
            store = store or RunStore(out / "store")
            run_id = store.create_run(config, group)
            store.transition(run_id, ("queued",), "running", started_at=time.time())
            run_ids.append(run_id)

            def on_event(event, bar=None, run_id=run_id, store=store):
                bar.on_event(event)
                if event["type"] != "end":
                    record_event(store, run_id, event)

            with progress.Progress(config) as bar:
                result = train(config, on_event=functools.partial(on_event, bar=bar),
                               should_stop=stop, splits=splits)  # fmt: skip
            store.transition(
                run_id, ("running",), result.status, finished_at=time.time(), error=result.error,
                test_loss=result.test_loss, test_accuracy=result.test_accuracy,
            )  # fmt: skip
            results.append({"run_id": i, "seed": config.seed,
                            "steps_per_epoch": len(splits.x_train) // config.batch_size,
                            **result.to_dict()})  # fmt: skip
            print(progress.result_line(results[-1]), file=sys.stderr)
            if result.status == "cancelled":
                break
    summary = cmp.variant_summary(results)
    title = f"BN Lab study: {get_preset(preset).title}"
    extra = report_figures(store, [store.get(i) for i in run_ids]) if store else []
    write_atomic(
        out / "report.html", build_report(results, title=title, preset=preset, extra_figures=extra)
    )
    write_atomic(out / "summary.csv", summary.to_csv(index=False))
    write_atomic(out / "curves.csv", cmp.run_curves(cmp.label_arms(results)).to_csv(index=False))
    write_atomic(out / "results.json", json.dumps(results, indent=2))
    print(cmp.summary_display(summary).to_string(index=False))
    print(
        f"\nwrote report.html, summary.csv, curves.csv, results.json to {out} (run store: store/)"
    )
    statuses = {r["status"] for r in results}
    return 130 if "cancelled" in statuses else 1 if "failed" in statuses else 0


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

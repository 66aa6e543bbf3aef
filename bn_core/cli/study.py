"""``study PRESET``: a preset's grid (``bn_core.analysis.study.PRESETS``) as queued runs of a
run store ``OUT/store`` (worker processes under the runner's limit, or Ray tasks), then
report.html, summary.csv, curves.csv and results.json in ``--out``."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

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
from bn_core.cli.values import number
from bn_core.config import TrainConfig, field_spec
from bn_core.runs.store import artifacts
from bn_core.vocabulary import Event, RunStatus

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
        description="Queue a preset's runs in a run store of their own (--out/store) and run\n"
        "them like any submitted run (worker processes, at most $BN_LAB_MAX_CONCURRENT at\n"
        "once, or on a Ray cluster), then write report.html, summary.csv, curves.csv and\n"
        "results.json to --out. `BN_LAB_HOME=OUT/store bash scripts/run.sh` shows them live.\n"
        "\nPresets:\n" + "\n".join(lines),
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
        type=number(int),
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
    from bn_core.runs.execution import caps

    configs = study_configs(args)
    check_data_dir(args.data_dir)
    # The per-submission cap, before --out or a store is made (JobRunner.submit checks both
    # caps again against the study's own store, whose queue may hold an earlier try's runs).
    caps.check_submit(len(configs), 0)
    _, cluster = cluster_for(args.backend)  # no cluster: one line, before --out is touched
    return cmd_study(args.preset, configs, prepare_out(args.out), cluster=cluster)


def cmd_study(preset: str, configs: list[TrainConfig], out: Path, cluster=None) -> int:
    """Queue ``configs`` as runs of the study's own store ``out/store`` and run them (locally,
    or all at once on ``cluster``, a RayBackend), then write the report and tables (also
    after Ctrl-C, covering what was measured)."""
    from bn_core.analysis.study import get_preset

    for dataset, data_dir in dict.fromkeys((c.dataset, c.data_dir) for c in configs):
        data.load_raw(dataset, data_dir)  # a missing dataset answers now, leaving no store
    group = f"study-{preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    results, store, run_ids = _run_all(
        configs, out / "store", group, get_preset(preset).title, cluster
    )
    _write_outputs(preset, results, store, run_ids, out)
    statuses = {r["status"] for r in results}
    if RunStatus.CANCELLED in statuses:
        return 130
    return 1 if statuses & {RunStatus.FAILED, RunStatus.INTERRUPTED} else 0  # a node was lost


def _run_all(configs: list[TrainConfig], home: Path, group: str, title: str, cluster=None):
    """Queue every config in a run store at ``home`` (group named ``title``) and run the
    queue until they end, like any submitted run: locally each is a worker process under the
    runner's concurrency limit (a standby worker has the datasets read), on ``cluster`` all
    go at once and this process is the head that records their events. The runs are live on
    the dashboard (``BN_LAB_HOME=OUT/store``), every one saves its model (window replay) and
    ends through ``recording.end_run``. Ctrl-C cancels the runs still going (a second one
    leaves at once). Returns (results in ``TrainResult.to_dict`` shape, store, run ids)."""
    from bn_core.runs.execution import JobRunner, LocalProcessBackend
    from bn_core.runs.store import RunStore

    store = RunStore(home)
    here = LocalProcessBackend(store, standby=cluster is None)  # no run here: no standby
    runner = JobRunner(store, here, kind="study", cluster=cluster)
    backend = "ray" if cluster is not None else "local"
    run_ids = runner.submit(configs, group_id=group, group_name=title, backend=backend)
    # This process leaves once they end: it takes only them (not runs an earlier study left
    # queued in the same store), locally and on the cluster.
    runner.cluster_claims = runner.local_claims = set(run_ids)
    where = f"on the Ray cluster ({cluster.address})" if cluster is not None else "here"
    print(f"{len(run_ids)} runs queued {where}; store {home}", file=sys.stderr)
    gone_since, cancelled = None, False
    with CtrlC() as stop, _StudyProgress(store, group, run_ids) as shown:
        runner.start()
        try:
            while True:
                if cluster is not None and runner.cluster_problem and store.queued_for("ray"):
                    gone_since = gone_since or time.time()
                    if time.time() - gone_since > CLUSTER_PATIENCE:
                        for run_id in run_ids:
                            runner.cancel(run_id)
                        raise ClusterUnavailable(
                            f"{runner.cluster_problem}; the study's queued runs are cancelled"
                        )
                else:
                    gone_since = None
                if not shown.follow():
                    break
                if stop() and not cancelled:
                    cancelled = True
                    print("cancelling the study's runs (Ctrl-C again: leave now)", file=sys.stderr)
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


class _StudyProgress:
    """The study's progress on stderr, read from its store: a line as each run starts, a bar
    and a line per epoch while it trains (``progress.Progress``), its result line as it ends.
    ``follow()`` shows what changed and says whether any run is still active."""

    def __init__(self, store, group: str, run_ids: list[int]):
        self.store, self.group, self.run_ids = store, group, run_ids
        self.bars: dict[int, Any] = {}  # run id -> progress.Progress while it trains
        self.epochs: dict[int, int] = {}  # run id -> epochs shown
        self.ended: set[int] = set()

    def __enter__(self) -> _StudyProgress:
        return self

    def __exit__(self, *exc) -> None:
        for bar in self.bars.values():
            bar.__exit__(None, None, None)

    def follow(self) -> bool:
        from bn_core.cli import progress

        mine = set(self.run_ids)  # one query a look, not one per run: a grid has dozens
        runs = [run for run in self.store.list_runs(group_id=self.group) if run.id in mine]
        for n, run in enumerate(runs, start=1):
            if run.id in self.ended:
                continue
            if run.id not in self.bars and run.total_steps and run.started_at:
                print(f"run {n}/{len(runs)}: {run.variant} seed {run.seed}", file=sys.stderr)
                bar = self.bars[run.id] = progress.Progress(run.config)
                bar.on_event({"type": Event.START, "total_steps": run.total_steps})
            if run.id in self.bars:
                self._epochs(run)
            if not run.active:
                self.ended.add(run.id)
                bar = self.bars.pop(run.id, None)
                if bar is not None:
                    bar.__exit__(None, None, None)
                result = {"variant": run.variant, "status": run.status, "error": run.error}
                result |= {"test_accuracy": run.test_accuracy, "test_loss": run.test_loss}
                where = f" on {run.node}" if run.backend == "ray" and run.node else ""
                print(progress.result_line(result) + where, file=sys.stderr)
        return any(run.active for run in runs)

    def _epochs(self, run) -> None:
        bar = self.bars[run.id]
        steps = self.store.steps_done([run.id]).get(run.id)
        rows = self.store.epoch_metrics([run.id])[self.epochs.get(run.id, 0) :]
        if steps:
            epoch = min(run.config.epochs, steps // max(1, run.steps_per_epoch or 1) + 1)
            bar.on_event({"type": Event.BATCH, "epoch": epoch, "step": steps, "loss": None})
        for row in rows:
            bar.on_event({"type": Event.EPOCH, **row})
        self.epochs[run.id] = self.epochs.get(run.id, 0) + len(rows)


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

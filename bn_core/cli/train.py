"""``train`` (one variant) and ``compare`` (the original study: every variant, same settings),
both in this process, with a progress bar on stderr and atomically written results."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bn_core.cli.common import (
    EXIT_CODES,
    CtrlC,
    add_config_flags,
    config_from_args,
    parse_variants,
    prepare_out,
    quiet_native_output,
    worst_exit,
)
from bn_core.config import TrainConfig
from bn_core.results import no_learning
from bn_core.runs.store import artifacts
from bn_core.variants import VARIANT_NAMES
from bn_core.vocabulary import REPLAYABLE, RunStatus


def register(commands, formatter) -> None:
    train = commands.add_parser("train", help="train one variant", formatter_class=formatter)
    add_config_flags(train)
    train.add_argument(
        "--out", default=None, help="folder for result.json, history.csv, model.keras"
    )
    train.add_argument("--json", action="store_true", help="print one JSON result object to stdout")
    train.set_defaults(handler=_train)

    compare = commands.add_parser(
        "compare",
        help="the original study: every variant, same settings",
        formatter_class=formatter,
    )
    compare.add_argument(
        "--variants",
        default=",".join(VARIANT_NAMES),
        help="comma-separated variants to train, in order",
    )
    add_config_flags(compare, exclude=("variant",))
    compare.add_argument("--out", default="compare-results", help="folder for the CSVs and chart")
    compare.add_argument("--json", action="store_true", help="print one JSON object to stdout")
    compare.set_defaults(handler=_compare)


@quiet_native_output
def _train(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    return cmd_train(config, prepare_out(args.out), args.json)


@quiet_native_output
def _compare(args: argparse.Namespace) -> int:
    variants = parse_variants(args.variants)
    config = config_from_args(args, variant=variants[0])
    return cmd_compare(config, variants, prepare_out(args.out), args.json)


def cmd_train(config: TrainConfig, out: Path | None, as_json: bool) -> int:
    from bn_core.analysis.summary import curves_frame
    from bn_core.cli import progress
    from bn_core.nn.training import train

    with progress.Progress(config) as bar, CtrlC() as stop:
        result = train(config, on_event=bar.on_event, should_stop=stop)
    summary = result.to_dict()
    val = result.history["val_accuracy"]  # what the pages judge: test, else validation
    summary["no_learning"] = no_learning(result.status, result.test_accuracy, val, config.val_size)
    if out is not None:
        artifacts.write_text(out / "result.json", json.dumps(summary, indent=2))
        artifacts.write_text(out / "history.csv", curves_frame([summary]).to_csv(index=False))
        if result.model is not None and result.status in REPLAYABLE:
            artifacts.save_model(result.model, out / "model.keras")
    if as_json:
        print(json.dumps(summary))
    else:
        print(progress.result_line(summary))
    return EXIT_CODES[result.status]


def cmd_compare(config: TrainConfig, variants: list[str], out: Path, as_json: bool) -> int:
    from bn_core import data
    from bn_core.analysis.summary import curves_frame, format_table, summary_table
    from bn_core.cli import progress
    from bn_core.views.charts import metric_figure

    splits = data.load(
        config.dataset,
        config.data_dir,
        val_size=config.val_size,
        train_limit=config.train_limit,
        seed=config.seed,
    )
    from bn_core.nn.training import train  # after the data: a bad dataset answers at once

    results = []
    with CtrlC() as stop:
        for name in variants:
            run_config = config.replace(variant=name)
            with progress.Progress(run_config) as bar:
                result = train(run_config, on_event=bar.on_event, should_stop=stop, splits=splits)
            results.append(result.to_dict())
            print(progress.result_line(results[-1]), file=sys.stderr)
            if result.status == RunStatus.CANCELLED:
                break
    table, curves = summary_table(results), curves_frame(results)
    artifacts.write_text(out / "summary.csv", table.to_csv(index=False))
    artifacts.write_text(out / "curves.csv", curves.to_csv(index=False))
    artifacts.write_text(out / "results.json", json.dumps(results, indent=2))
    chart = metric_figure(curves, "val_accuracy", f"Validation accuracy on {config.dataset}")
    html = chart.to_html(include_plotlyjs=True, full_html=True)
    artifacts.write_text(out / "val_accuracy.html", html)
    if as_json:
        print(json.dumps({"summary": table.to_dict(orient="records"), "results": results}))
    else:
        print(format_table(table))
        print(f"\nwrote summary.csv, curves.csv, results.json, val_accuracy.html to {out}")
    return worst_exit({r["status"] for r in results})

"""Command line: ``python -m bn_core train|compare|study``.

Flags, defaults, limits and help texts are generated from ``TrainConfig``. TensorFlow is
imported only once a run really starts, so ``--help`` and bad flags answer instantly.

Exit codes: 0 completed; 1 dataset missing/corrupt or run failed; 2 bad flags or values;
3 diverged; 130 cancelled (Ctrl-C: the first one stops cleanly, keeping what was measured).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bn_core import cli_store
from bn_core.config import ConfigError, TrainConfig, field_spec, format_number
from bn_core.data import DatasetError
from bn_core.variants import VARIANT_NAMES, VARIANTS

EXIT_CODES = {"completed": 0, "failed": 1, "diverged": 3, "cancelled": 130}


class _DefaultsFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to every flag that has a default other than None/False."""

    def _get_help_string(self, action):
        hidden = action.default is None or action.default is False  # (0 == False: use identity)
        if hidden or action.default == argparse.SUPPRESS or "%(default)" in action.help:
            return action.help
        return action.help + " (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line, without the usage block, and takes no
    abbreviations (``compare --variant X`` must not silently mean ``--variants X``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m bn_core",
        description="BN Lab: train LeNet-5 with and without Batch Normalization.",
        epilog=__doc__.split("\n\n")[-1],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fmt = _DefaultsFormatter

    train = commands.add_parser("train", help="train one variant", formatter_class=fmt)
    _add_config_flags(train)
    train.add_argument(
        "--out", default=None, help="folder for result.json, history.csv, model.keras"
    )
    train.add_argument("--json", action="store_true", help="print one JSON result object to stdout")

    compare = commands.add_parser(
        "compare", help="the original study: every variant, same settings", formatter_class=fmt
    )
    compare.add_argument(
        "--variants",
        default=",".join(VARIANT_NAMES),
        help="comma-separated variants to train, in order",
    )
    _add_config_flags(compare, exclude=("variant",))
    compare.add_argument("--out", default="compare-results", help="folder for the CSVs and chart")
    compare.add_argument("--json", action="store_true", help="print one JSON object to stdout")
    cli_store.add_study_command(commands, fmt)
    cli_store.add_commands(commands, _add_config_flags, fmt)
    return parser


def _add_config_flags(parser: argparse.ArgumentParser, exclude: tuple[str, ...] = ()) -> None:
    for f in dataclasses.fields(TrainConfig):
        if f.name in exclude:
            continue
        spec = field_spec(f.name)
        help_text = spec["help"]
        if spec["min"] is not None:
            help_text += f"; {format_number(spec['min'])} to {format_number(spec['max'])}"
        if f.name == "variant":
            help_text += ". " + " ".join(f"{v.name}: {v.description}" for v in VARIANTS.values())
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=spec["type"],
            default=spec["default"],
            choices=spec["choices"],
            metavar=None if spec["choices"] else f.name.upper(),
            help=help_text.replace("%", "%%"),
        )


def _config_from_args(args: argparse.Namespace, **overrides: Any) -> TrainConfig:
    values = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if hasattr(args, f.name)
    }
    return TrainConfig(**{**values, **overrides}).validate()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    config, variants, configs = None, None, None
    try:
        if args.command in ("train", "compare", "submit"):
            variants = _parse_variants(args.variants) if args.command == "compare" else None
            config = _config_from_args(args, **({"variant": variants[0]} if variants else {}))
        if args.command == "study":
            configs = cli_store.study_configs(args)
        data_dir = getattr(args, "data_dir", None)
        if data_dir is not None and not os.path.isdir(data_dir):
            raise ConfigError(f"--data-dir {data_dir} is not a folder; pass an existing folder")
        out = _prepare_out(getattr(args, "out", None))
    except ConfigError as exc:
        parser.error(str(exc))
    try:
        if args.command == "train":
            return _cmd_train(config, out, args.json)
        if args.command == "compare":
            return _cmd_compare(config, variants, out, args.json)
        if args.command == "study":
            return cli_store.cmd_study(args.preset, configs, out, _CtrlC, _write_atomic)
        return cli_store.dispatch(args, config)
    except DatasetError as exc:
        print(f"{parser.prog}: dataset error: {exc}", file=sys.stderr)
        return 1


def _parse_variants(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if not names or unknown:
        raise ConfigError(
            f"--variants must list some of {', '.join(VARIANT_NAMES)}. Received: {text!r}"
        )
    return names


def _prepare_out(out: str | None) -> Path | None:
    """Create the output folder up front, so a bad path fails before any training."""
    if out is None:
        return None
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"--out {out} cannot be created ({exc.strerror}); choose another folder"
        ) from exc
    if not os.access(path, os.W_OK):
        raise ConfigError(f"--out {out} is not writable; choose another folder")
    return path


def _cmd_train(config: TrainConfig, out: Path | None, as_json: bool) -> int:
    from bn_core import progress
    from bn_core.models import save_atomic
    from bn_core.summary import curves_frame
    from bn_core.training import train

    with progress.Progress(config) as bar, _CtrlC() as stop:
        result = train(config, on_event=bar.on_event, should_stop=stop)
    summary = result.to_dict()
    if out is not None:
        _write_atomic(out / "result.json", json.dumps(summary, indent=2))
        _write_atomic(out / "history.csv", curves_frame([summary]).to_csv(index=False))
        if result.model is not None and result.status in ("completed", "cancelled"):
            save_atomic(result.model, out / "model.keras")
    if as_json:
        print(json.dumps(summary))
    else:
        print(progress.result_line(summary))
    return EXIT_CODES[result.status]


def _cmd_compare(config: TrainConfig, variants: list[str], out: Path, as_json: bool) -> int:
    from bn_core import data as data_lib
    from bn_core import progress
    from bn_core.charts import metric_figure
    from bn_core.summary import curves_frame, format_table, summary_table
    from bn_core.training import train

    splits = data_lib.load(
        config.dataset, config.data_dir, val_size=config.val_size,
        train_limit=config.train_limit, seed=config.seed,
    )  # fmt: skip
    results = []
    with _CtrlC() as stop:
        for name in variants:
            run_config = config.replace(variant=name)
            with progress.Progress(run_config) as bar:
                result = train(run_config, on_event=bar.on_event, should_stop=stop, splits=splits)
            results.append(result.to_dict())
            print(progress.result_line(results[-1]), file=sys.stderr)
            if result.status == "cancelled":
                break
    table, curves = summary_table(results), curves_frame(results)
    _write_atomic(out / "summary.csv", table.to_csv(index=False))
    _write_atomic(out / "curves.csv", curves.to_csv(index=False))
    _write_atomic(out / "results.json", json.dumps(results, indent=2))
    chart = metric_figure(curves, "val_accuracy", f"Validation accuracy on {config.dataset}")
    _write_atomic(out / "val_accuracy.html", chart.to_html(include_plotlyjs=True, full_html=True))
    if as_json:
        print(json.dumps({"summary": table.to_dict(orient="records"), "results": results}))
    else:
        print(format_table(table))
        print(f"\nwrote summary.csv, curves.csv, results.json, val_accuracy.html to {out}")
    statuses = {r["status"] for r in results}
    for worst in ("cancelled", "failed", "diverged"):  # the most serious outcome decides
        if worst in statuses:
            return EXIT_CODES[worst]
    return 0


def _write_atomic(path: Path, text: str) -> None:
    """Write through a temporary file and rename, so a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _CtrlC:
    """A ``should_stop`` callable: the first Ctrl-C asks the run to stop cleanly."""

    def __init__(self):
        self.requested = False
        self._previous: Callable | int | None = None

    def __call__(self) -> bool:
        return self.requested

    def __enter__(self) -> _CtrlC:
        def handler(signum, frame):
            self.requested = True
            signal.signal(signal.SIGINT, self._previous)  # a second Ctrl-C aborts at once

        self._previous = signal.signal(signal.SIGINT, handler)
        return self

    def __exit__(self, *exc) -> None:
        signal.signal(signal.SIGINT, self._previous)

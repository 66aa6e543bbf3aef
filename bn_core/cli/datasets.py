"""``datasets``: where each dataset would be loaded from; ``--fetch`` downloads what is missing
(used to bake the data into the Docker image)."""

from __future__ import annotations

from bn_core import data
from bn_core.cli.common import check_data_dir
from bn_core.constants import DATASETS


def register(commands, formatter) -> None:
    datasets = commands.add_parser(
        "datasets", help="where each dataset is found; --fetch downloads", formatter_class=formatter
    )
    datasets.add_argument(
        "--data-dir", dest="data_dir", default=None, help="extra folder to search"
    )
    datasets.add_argument("--fetch", action="store_true", help="download what is not found locally")
    datasets.set_defaults(handler=lambda args: cmd_datasets(args.data_dir, args.fetch))


def cmd_datasets(data_dir: str | None, fetch: bool) -> int:
    """Raises DatasetError (exit 1) if --fetch cannot get a dataset."""
    check_data_dir(data_dir)
    for name in DATASETS:
        where = data.locate(name, data_dir)
        if where is None and fetch:
            where = data.load_raw(name, data_dir).source
        print(f"{name}: {where or 'not found locally; downloaded at first use'}")
    return 0

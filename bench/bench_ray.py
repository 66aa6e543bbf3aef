"""Local vs a Ray cluster: the quick Original study run through the local backend and
on a 2-worker Ray cluster on this machine, the Ray path's cost per run, and a paper estimate of
the full sweeps on clusters of 1, 4 and 16 nodes.

    .venv/bin/python bench/bench_ray.py [--seeds 3] [--skip-local] [--json FILE]

The study is ``preset_configs("original", quick=True, seeds=SEEDS)`` on real Fashion-MNIST (5
variants x SEEDS seeds, 3 epochs of 5,000 training images, batch 64), each path in a fresh store:

- **local**: ``JobRunner(store)`` with the default local backend and concurrency (1 run at a
  time on 2 cores, TensorFlow using both); the runner idles ``--settle`` s first, so its
  standby worker has imported TensorFlow, as in a dashboard that has been up a while;
- **cluster**: ``ray.cluster_utils.Cluster`` on loopback, a head with 0 CPUs (nothing trains
  there) and 2 worker nodes of 1 CPU, through ``JobRunner(store, cluster=RayBackend(address))``
  with ``backend="ray"``: 2 runs at once, 1 TensorFlow thread each. The worker nodes get a
  fresh ``TMPDIR`` so their XLA cache starts empty, as the local store's does.

Per run, from the store: training img/s (the epoch rows of epochs 2 on: the first compiles),
the run's time (``finished_at - started_at``) and its fixed part (that time less its training
and validation time: imports, data, compilation, test evaluation, the model); from
``RayBackend.relay_stats()``: submit -> first event from the node, and each event's relay lag.
The paper estimate scales the measured per-run numbers (the cluster's: 1 CPU a run) to every
preset's full runs; nothing there is run. Numbers on this shared 2-core VM are noisy.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Before Ray is imported (it reads this once): with it, and every node on 127.0.0.1, this
# process joins the cluster on loopback too, so no Ray traffic leaves this machine.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

from bn_core import data as data_lib  # noqa: E402
from bn_core.analysis.study import PRESETS, preset_configs  # noqa: E402
from bn_core.config import ConfigError, TrainConfig, training_images  # noqa: E402
from bn_core.runs.execution.backends.local import LocalProcessBackend  # noqa: E402
from bn_core.runs.execution.backends.ray_backend import RayBackend, resources_from_env  # noqa: E402
from bn_core.runs.execution.runner import JobRunner  # noqa: E402
from bn_core.runs.store.run_store import RunRecord, RunStore  # noqa: E402

DATASET = "fashion_mnist"
NODES = (1, 4, 16)  # cluster sizes of the paper estimate
NODE_CPUS = 8  # CPUs of each node there (an assumption)
TARGET_SHARE, TARGET_START = 0.05, 2.0  # Ray's cost: <= 5% of a 1-minute run, <= 2 s to start
RUN_MINUTE = 60.0
POLL = 0.2  # seconds between store reads while the study runs (stage times)
# Stages a run goes through (bn_core.nn.training.STAGES; not imported: that module loads
# TensorFlow). Each segment: (label, from stage, to stage; None: the run's start, its end).
SEGMENTS = (
    ("start → compiling: imports, data", None, "compiling"),
    ("compiling → first points: build, compile, 4 steps", "compiling", "training"),
    # On Ray the model is saved on the node before its bytes come: "saving" shows only briefly.
    ("test evaluation → end: evaluate, save the model", "evaluating on the test set", None),
)


def study(seeds: int, data_dir: str | None) -> list[TrainConfig]:
    return preset_configs("original", quick=True, seeds=seeds, dataset=DATASET, data_dir=data_dir)


def run_study(runner: JobRunner, configs: list[TrainConfig], backend: str) -> tuple:
    """Submit the study and wait for every run, noting when each run's stage first shows;
    (runs, seconds from submit to the last end, {run id: {stage: time first seen}}, the
    load average at submit and at the end)."""
    t0, seen, load = time.time(), {}, [os.getloadavg()[0]]
    ids = runner.submit(configs, group_name=f"bench {backend}", backend=backend)
    runner.start()
    while True:
        runs = [runner.store.get(i) for i in ids]
        now = time.time()
        for run in runs:
            if run.active and run.stage:
                seen.setdefault(run.id, {}).setdefault(run.stage, now)
        if not any(run.active for run in runs):
            break
        time.sleep(POLL)
    for run in runs:
        if run.status != "completed":
            print(f"run {run.id} ({backend}) ended {run.status}: {run.error}", file=sys.stderr)
    load.append(os.getloadavg()[0])
    return runs, max(run.finished_at or time.time() for run in runs) - t0, seen, load


def segments(seen: dict[str, float], start: float, end: float) -> dict[str, float | None]:
    """Seconds between stages first seen (``SEGMENTS``); None where one was not seen."""
    out = {}
    for label, first, then in SEGMENTS:
        a = start if first is None else seen.get(first)
        b = end if then is None else seen.get(then)
        out[label] = b - a if a is not None and b is not None else None
    return out


def per_run(store: RunStore, run: RunRecord, seen: dict, relay: dict | None = None) -> dict:
    """One run's numbers (module doc); ``seen``: its stages' first times; ``relay``: its
    ``relay_stats()`` entry (Ray only)."""
    config = run.config
    epochs = store.epoch_metrics([run.id])
    batches = store.batch_metrics([run.id])
    steady = [row["images_per_second"] for row in epochs[1:]] or [0.0]
    ips = statistics.median(steady)
    # Between two epoch rows, beyond the epoch's training: validation, checkpoint, events.
    between = [b["t"] - a["t"] - b["seconds"] for a, b in zip(epochs, epochs[1:], strict=False)]
    val_epoch = statistics.median(between) if between else 0.0
    relay = relay or {}
    to_node = relay.get("to_node")
    began = run.started_at - (to_node or 0.0)  # Ray: its task's submission (started = on node)
    run_s = run.finished_at - run.started_at
    images = training_images(config.val_size, config.train_limit) // config.batch_size
    train_s = config.epochs * images * config.batch_size / ips if ips else math.nan
    return {
        "id": run.id,
        "variant": config.variant,
        "seed": config.seed,
        "status": run.status,
        "node": run.node,
        "train_ips": ips,
        "recorded_ips": run.images_per_second,
        "run_s": run_s,
        "first_s": batches[0]["t"] - began if batches else None,
        "val_per_image_s": val_epoch / config.val_size,
        "fixed_s": run.finished_at - began - train_s - config.epochs * val_epoch,
        "to_node": to_node,
        "lag_median": relay.get("lag_median"),
        "lag_max": relay.get("lag_max"),
        **segments(seen.get(run.id, {}), run.started_at, run.finished_at),
        "stages": {k: v - run.started_at for k, v in seen.get(run.id, {}).items()},
    }


def local_study(configs: list[TrainConfig], settle: float) -> dict:
    home = Path(tempfile.mkdtemp(prefix="bench-ray-local-"))
    runner = JobRunner(RunStore(home)).start()
    try:
        time.sleep(settle)  # the standby worker imports TensorFlow meanwhile
        runs, wall, seen, load = run_study(runner, configs, "local")
        rows = [per_run(runner.store, run, seen) for run in runs]
        threads = "all cores" if runner.max_concurrent == 1 else "shared"
        layout = f"{runner.max_concurrent} × {threads} ({os.cpu_count()})"
        return {"wall": wall, "runs": rows, "layout": layout, "load": load}
    finally:
        runner.stop()
        runner.backend.close()  # its standby worker
        shutil.rmtree(home, ignore_errors=True)


def cluster_study(configs: list[TrainConfig], data_dir: str | None) -> dict:
    """The study on a loopback cluster (head: 0 CPUs, 2 worker nodes of 1 CPU)."""
    import ray
    from ray.cluster_utils import Cluster

    home = Path(tempfile.mkdtemp(prefix="bench-ray-cluster-"))
    node_tmp = Path(tempfile.mkdtemp(prefix="bnr-"))  # the nodes' TMPDIR: an empty XLA cache
    t0 = time.perf_counter()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "node_ip_address": "127.0.0.1", "include_dashboard": False},
    )
    runner = None
    try:
        saved = os.environ.get("TMPDIR")
        os.environ["TMPDIR"] = str(node_tmp)  # inherited by the worker nodes' processes only
        try:
            for _ in range(2):
                cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
        finally:
            if saved is None:
                del os.environ["TMPDIR"]
            else:
                os.environ["TMPDIR"] = saved
        cluster.wait_for_nodes()
        backend = RayBackend(cluster.address)
        backend.connect()
        started = time.perf_counter() - t0
        put = measure_put(ray, data_dir)
        store = RunStore(home)
        # No standby worker on the head: it would import TensorFlow on the nodes' cores.
        runner = JobRunner(store, LocalProcessBackend(store, standby=False), cluster=backend)
        runs, wall, seen, load = run_study(runner, configs, "ray")
        stats = backend.relay_stats()
        rows = [per_run(store, run, seen, stats.get(run.id)) for run in runs]
        layout = f"2 × {backend.num_cpus:g}"
        return {
            "wall": wall,
            "runs": rows,
            "layout": layout,
            "load": load,
            "cluster_start": started,
            "put": put,
        }
    finally:
        if runner is not None:
            runner.stop()
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(node_tmp, ignore_errors=True)


def measure_put(ray, data_dir: str | None) -> dict:
    """Read the dataset and ``ray.put`` it once, as the backend does once per dataset."""
    t0 = time.perf_counter()
    raw = data_lib.load_raw(DATASET, data_dir)
    read = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = ray.put(raw)
    seconds = time.perf_counter() - t0
    del ref
    arrays = (raw.x_train, raw.y_train, raw.x_test, raw.y_test)
    return {"read_s": read, "put_s": seconds, "mb": sum(a.nbytes for a in arrays) / 1e6}


def import_seconds(repeats: int = 3) -> list[float]:
    """Seconds to import TensorFlow and the engine in a fresh process with 1 thread (what a Ray
    task does after its first event; a local standby worker does it before its run)."""
    code = "import time; t = time.perf_counter(); import bn_core.nn.training; "
    code += "print(time.perf_counter() - t)"
    env = {**os.environ, "TF_NUM_INTRAOP_THREADS": "1", "OMP_NUM_THREADS": "1"}
    out = []
    for _ in range(repeats):
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        out.append(float(done.stdout.strip().splitlines()[-1]))
    return out


def basis(rows: list[dict]) -> dict:
    """Medians over completed runs: training img/s, fixed part (s), validation s per image."""
    ok = [r for r in rows if r["status"] == "completed"]
    return {
        "ips": statistics.median(r["train_ips"] for r in ok),
        "fixed_s": statistics.median(r["fixed_s"] for r in ok),
        "val_per_image_s": statistics.median(r["val_per_image_s"] for r in ok),
    }


def run_seconds(config: TrainConfig, measured: dict) -> float:
    """A run's estimated time: its fixed part + its epochs of training and validation."""
    images = training_images(config.val_size, config.train_limit)
    train = images // config.batch_size * config.batch_size / measured["ips"]
    return measured["fixed_s"] + config.epochs * (
        train + measured["val_per_image_s"] * config.val_size
    )


def estimate(cluster: list[dict], local: list[dict] | None) -> tuple[list[dict], dict]:
    """Full-sweep wall times from measured per-run numbers, a simulation on paper: on N nodes
    of NODE_CPUS CPUs, NODE_CPUS / BN_LAB_RAY_CPUS runs at once per node, each as fast as a
    measured 1-CPU cluster run; and on this VM with the local backend, one run at a time."""
    on_cluster = basis(cluster)
    on_cluster["per_node"] = int(NODE_CPUS // resources_from_env()[0])
    here = basis(local) if local else None
    out = []
    for name in PRESETS:
        configs = preset_configs(name, dataset=DATASET)
        run_s = max(run_seconds(c, on_cluster) for c in configs)
        slots = {n: n * on_cluster["per_node"] for n in NODES}
        walls = {n: math.ceil(len(configs) / slots[n]) * run_s for n in NODES}
        row = {"preset": name, "runs": len(configs), "run_s": run_s, "walls": walls}
        if here is not None:
            row["local_s"] = sum(run_seconds(c, here) for c in configs)
        out.append(row)
    return out, {"cluster": on_cluster, "local": here}


def spread(values: list, fmt: str = "{:,.1f}") -> str:
    """``median (min–max)`` of the values that are not None; ``—`` if none are."""
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    med, low, high = statistics.median(values), min(values), max(values)
    return f"{fmt.format(med)} ({fmt.format(low)}–{fmt.format(high)})"


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def table(header: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|---" + "|---:" * (len(header) - 1) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def completed(result: dict) -> list[dict]:
    return [r for r in result["runs"] if r["status"] == "completed"]


def paired(local: list[dict], cluster: list[dict]) -> list[tuple[dict, dict]]:
    """(local, cluster) numbers of the same variant and seed, both completed."""
    by_key = {(r["variant"], r["seed"]): r for r in local}
    return [(by_key[k], r) for r in cluster if (k := (r["variant"], r["seed"])) in by_key]


def key(result: dict, name: str) -> list:
    return [r[name] for r in completed(result)]


def study_table(cols: dict[str, dict]) -> None:
    measures = [
        ("runs completed", lambda c: f"{len(completed(c))}/{len(c['runs'])}"),
        ("runs at once × TensorFlow threads each", lambda c: c["layout"]),
        ("wall time, submit → all ended (s)", lambda c: f"{c['wall']:,.0f}"),
        ("load average at submit → at the end", lambda c: "{:.1f} → {:.1f}".format(*c["load"])),
        ("training img/s per run (epochs 2–3)", lambda c: spread(key(c, "train_ips"), "{:,.0f}")),
        ("RunRecord.images_per_second", lambda c: spread(key(c, "recorded_ips"), "{:,.0f}")),
        ("run time, started → finished (s)", lambda c: spread(key(c, "run_s"))),
        ("submit → first point, queue wait excluded (s)", lambda c: spread(key(c, "first_s"))),
        ("fixed part of a run (s)", lambda c: spread(key(c, "fixed_s"))),
        *((f"— {label} (s)", lambda c, k=label: spread(key(c, k))) for label, _, _ in SEGMENTS),
    ]
    table(["study", *cols], [[name, *(cell(c) for c in cols.values())] for name, cell in measures])


def overhead_table(res: dict) -> None:
    cluster, rows = res["cluster"], completed(res["cluster"])
    start, share = f"≤ {TARGET_START:g} s to start", TARGET_SHARE * RUN_MINUTE
    lines = [
        ["submit → first event from node (s)", spread(key(cluster, "to_node"), "{:.2f}"), start],
        ["event relay lag, median of a run (s)", spread(key(cluster, "lag_median"), "{:.3f}"), ""],
        ["event relay lag, largest of a run (s)", spread(key(cluster, "lag_max"), "{:.3f}"), ""],
    ]
    if "local" in res:
        pairs = paired(completed(res["local"]), rows)
        diff = [c["run_s"] - lo["run_s"] for lo, c in pairs]
        pct = [(c["run_s"] - lo["run_s"]) / lo["run_s"] * 100 for lo, c in pairs]
        extra = [c["fixed_s"] - lo["fixed_s"] for lo, c in pairs]
        first = [c["first_s"] - lo["first_s"] for lo, c in pairs]
        lines += [
            [f"Ray run time − local, same variant+seed ({len(pairs)} pairs, s)", spread(diff), ""],
            ["… as a share of the local run time (%)", spread(pct, "{:.0f}"), ""],
            ["submit → first point, Ray − local (s)", spread(first), start],
            [
                "fixed part of a run, Ray − local (s)",
                spread(extra),
                f"≤ {share:g} s ({TARGET_SHARE:.0%} of a 1-minute run)",
            ],
        ]
    lines.append(
        ["import TensorFlow + engine, fresh process, 1 thread (s)", spread(res["imports"]), ""]
    )
    table(["Ray path, per run", "median (min–max)", "target"], lines)
    put = cluster["put"]
    print(
        f"\nOnce per study: ray.put of the dataset {put['put_s']:.2f} s for {put['mb']:.1f} MB "
        f"(reading its files {put['read_s']:.2f} s); cluster start (head + 2 nodes, joined) "
        f"{cluster['cluster_start']:.1f} s."
    )


def estimate_table(plan: list[dict], measured: dict) -> None:
    on, full = measured["cluster"], preset_configs("original", dataset=DATASET)[0]
    print(
        f"\nA simulation on paper, from measured per-run numbers (the cluster's runs, 1 CPU "
        f"each): {on['ips']:,.0f} img/s, fixed part {on['fixed_s']:.1f} s a run, "
        f"validation {on['val_per_image_s'] * 1000:.2f} s per 1,000 images; full runs "
        f"(every preset's defaults: {full.epochs} epochs of "
        f"{training_images(full.val_size, full.train_limit):,} training and "
        f"{full.val_size:,} validation images); {NODE_CPUS}-CPU nodes, {on['per_node']} runs "
        "per node "
        f"(BN_LAB_RAY_CPUS={NODE_CPUS // on['per_node']})."
    )
    header = ["preset", "runs", "est. run time"]
    header += [f"{n} node{'s' if n > 1 else ''}" for n in NODES]
    here = measured["local"]
    if here is not None:
        print(
            f"This VM, local (one run at a time, 2 threads): {here['ips']:,.0f} img/s, fixed "
            f"part {here['fixed_s']:.1f} s, validation {here['val_per_image_s'] * 1000:.2f} s "
            "per 1,000 images."
        )
        header.append("this VM, local")
    print()
    rows = []
    for p in plan:
        row = [p["preset"], str(p["runs"]), duration(p["run_s"])]
        row += [duration(p["walls"][n]) for n in NODES]
        rows.append(row + ([duration(p["local_s"])] if "local_s" in p else []))
    table(header, rows)


def report(res: dict, configs: list[TrainConfig], seeds: int) -> None:
    cols = {name: res[name] for name in ("local", "cluster") if name in res}
    c = configs[0]
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, load average at the end "
        f"{os.getloadavg()[0]:.1f}; {time.strftime('%Y-%m-%d %H:%M')}. Quick Original study, "
        f"{seeds} seed(s): {len(configs)} runs of {c.epochs} epochs x "
        f"{training_images(c.val_size, c.train_limit):,} Fashion-MNIST images, batch "
        f"{c.batch_size}.\n"
    )
    study_table(cols)
    print()
    overhead_table(res)
    estimate_table(*res["estimate"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds per variant (default 3)")
    parser.add_argument("--skip-local", action="store_true", help="run only the cluster study")
    parser.add_argument("--json", default=None, help="also write the raw numbers here")
    parser.add_argument("--data-dir", default=None, help="default: search the usual places")
    parser.add_argument(
        "--settle", type=float, default=20.0, help="idle seconds before the local submit (20)"
    )
    args = parser.parse_args(argv)
    try:
        configs = study(args.seeds, args.data_dir)
    except ConfigError as exc:
        parser.error(str(exc))
    res: dict = {}
    if not args.skip_local:
        res["local"] = local_study(configs, args.settle)
        print(f"local: {res['local']['wall']:.0f} s", file=sys.stderr, flush=True)
    res["cluster"] = cluster_study(configs, args.data_dir)
    print(f"cluster: {res['cluster']['wall']:.0f} s", file=sys.stderr, flush=True)
    res["imports"] = import_seconds()
    res["estimate"] = estimate(res["cluster"]["runs"], res.get("local", {}).get("runs"))
    report(res, configs, args.seeds)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(res, fh, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())

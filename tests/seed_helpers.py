"""Run stores seeded for the pages under AppTest: probed runs for "Inside the network"
(``seed_probed``, its percentiles given by ``layer_values`` at ``STEPS``) and a learning-rate
sweep with a diverged run for the Sweep page (``seed_sweep``)."""

from __future__ import annotations

from bn_core.config import TrainConfig
from bn_core.runs.store.run_store import RunStore
from bn_core.variants import SITES
from bn_core.views import probes as pv

STEPS = (0, 32, 64)


def layer_values(variant: str, site_index: int, step: int) -> list[float]:
    """Seeded percentiles: plain LeNet's widen over training, the BN run's stay put."""
    spread = 1.0 + step / 32 if variant == "lenet" else 1.0
    return [-spread + site_index, 0.1 * step + site_index, spread + site_index]


def seed_probed(store: RunStore, status: str = "completed") -> dict[str, int]:
    """An old probed run, a study group (lenet, lenet_fc_bn2, both probed) and a newer run
    without probes."""
    ids = {"old": store.create_run(TrainConfig(variant="lenet", probe_every=32), "old")}
    for variant in ("lenet", "lenet_fc_bn2"):
        ids[variant] = store.create_run(TrainConfig(variant=variant, probe_every=32), "study")
    ids["plain"] = store.create_run(TrainConfig(variant="lenet_bn1"), "newer")
    for name in ("old", "lenet", "lenet_fc_bn2"):
        run_id, variant = ids[name], store.get(ids[name]).variant
        store.transition(run_id, ("queued",), "running", started_at=1.0, pid=10**7)
        for step in STEPS:
            sites = {
                site: {
                    "layer": layer_values(variant, i, step),
                    "unit": [v * 2 for v in layer_values(variant, i, step)],
                }
                for i, site in enumerate(SITES)
            }
            norms = {layer: 10.0 ** (-i) * (1 + step) for i, layer in enumerate(pv.GRAD_LAYERS)}
            store.add_probe(
                run_id,
                {
                    "type": "probe",
                    "step": step,
                    "epoch_progress": step / 32,
                    "probe_accuracy": 0.1 + step / 100,
                    "sites": sites,
                    "grad_norms": norms,
                },
            )
        for epoch in (1, 2):
            gap = {
                "type": "mode_gap",
                "epoch": epoch,
                "val_accuracy_inference": 0.8 + epoch / 20,
                "val_accuracy_batch_stats": 0.82 + epoch / 20,
            }
            store.add_mode_gap(run_id, gap)
        if status != "running":
            store.transition(run_id, ("running",), status)
    return ids


def seed_sweep(store: RunStore, group: str = "sweep-test") -> None:
    """lenet and lenet_fc_bn2 at lr x1 and x30, two seeds; lenet x30 seed 1 diverged."""
    for variant, accs in (
        ("lenet", {None: (0.90, 0.92), 3e-2: (0.50, None)}),
        ("lenet_fc_bn2", {None: (0.95, 0.97), 3e-2: (0.93, 0.91)}),
    ):
        for lr, pair in accs.items():
            for seed, acc in enumerate(pair):
                config = TrainConfig(variant=variant, seed=seed, learning_rate=lr, epochs=1)
                rid = store.create_run(config, group)
                store.transition(rid, ("queued",), "running", started_at=1.0)
                store.update(rid, steps_per_epoch=100, total_steps=100)
                store.add_epoch(
                    rid,
                    {
                        "epoch": 1,
                        "step": 100,
                        "loss": 1.0,
                        "accuracy": 0.5,
                        "val_loss": 1.0,
                        "val_accuracy": acc or 0.1,
                        "seconds": 1.0,
                        "images_per_second": 100.0,
                    },
                )
                if acc is None:
                    store.transition(rid, ("running",), "diverged", error="loss reached nan")
                else:
                    store.transition(
                        rid, ("running",), "completed", test_accuracy=acc, test_loss=0.3
                    )

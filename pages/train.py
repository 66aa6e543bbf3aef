"""Train: pick a dataset, variants and hyperparameters; Start queues one run per (variant, seed).

Every default, limit and help text comes from TrainConfig's field metadata (field_spec). A
preset fills the form: its values are written to the widgets' session_state keys (which hold
every widget's starting value) in the selectbox's on_change callback, before the widgets exist.
"""

import streamlit as st

from bn_core.analysis import study
from bn_core.config import ConfigError, field_spec
from bn_core.variants import VARIANT_NAMES, VARIANTS
from bn_core.views import train_form
from pages._ui import RUNS_PAGE, get_runner, use_navigation

use_navigation()
for key, value in train_form.train_form_state().items():
    st.session_state.setdefault(key, value)


def apply_preset() -> None:
    name = st.session_state["train-preset"]
    if name is not None:
        st.session_state.update(
            train_form.train_form_state(name, st.session_state["train-preset-quick"])
        )


def choice(label: str, name: str, **kwargs):
    """A selectbox over a field's choices, preselecting its default."""
    spec = field_spec(name)
    options = list(spec["choices"])
    return st.selectbox(
        label, options, index=options.index(spec["default"]), help=spec["help"], **kwargs
    )


def number(label: str, name: str, **kwargs):
    """A number_input within a field's limits (its starting value is in session_state)."""
    spec = field_spec(name)
    return st.number_input(
        label, min_value=spec["min"], max_value=spec["max"], help=spec["help"], **kwargs
    )


def slider(label: str, name: str, **kwargs):
    spec = field_spec(name)
    return st.slider(label, spec["min"], spec["max"], help=spec["help"], **kwargs)


st.title("Train")
st.caption(
    "Queue LeNet-5 variants with the same settings. Runs train in background worker processes; "
    "watch them on the Runs page and compare them on the Compare page."
)
preset_col, quick_col = st.columns([3, 1], vertical_alignment="bottom")
preset = preset_col.selectbox(
    "Preset",
    [None, *study.PRESETS],
    format_func=lambda n: "None" if n is None else f"{study.PRESETS[n].title} ({n})",
    key="train-preset",
    on_change=apply_preset,
    help="fill the form with one of the paper's studies",
)
quick_col.checkbox(
    "quick",
    key="train-preset-quick",
    on_change=apply_preset,
    help="the preset's quick version (a few minutes on 2 cores)",
)
if preset is not None:
    st.caption(study.PRESETS[preset].description)

left, right = st.columns(2, gap="large")
with left:
    st.subheader("Data and model")
    dataset = choice("Dataset", "dataset", key="train-dataset")
    kind, message = train_form.dataset_status(dataset)
    message = f"**{dataset}**: {message}"
    if kind == "local":
        st.caption(f":material/check_circle: {message}")
    elif kind == "download":
        st.info(message, icon=":material/cloud_download:")
    else:
        st.warning(message, icon=":material/warning:")

    variants = st.multiselect(
        "Variants", VARIANT_NAMES, key="train-variants", help=field_spec("variant")["help"]
    )
    for name in variants:
        sites = ", ".join(VARIANTS[name].bn_sites) or "none"
        st.caption(f"**{name}** (BN at {sites}): {VARIANTS[name].description}")
    activation = choice("Activation", "activation", key="train-activation")

    seeds_col, repeats_col = st.columns(2)
    with seeds_col:
        seed = number("Seed", "seed", step=1, key="train-seed")
    with repeats_col:
        repeats = st.number_input(
            "Repeats (seeds per variant)",
            min_value=1,
            max_value=train_form.MAX_REPEATS,
            step=1,
            key="train-repeats",
            help="runs per variant, with seeds seed, seed+1, ... (for mean ± std on Compare)",
        )
    probe_every = number(
        "Probe every k steps (0: off)", "probe_every", step=16, key="train-probe-every"
    )

with right:
    st.subheader("Training")
    epochs = slider("Epochs", "epochs", key="train-epochs")
    batch_size = st.select_slider(
        "Batch size",
        train_form.batch_size_choices(),
        key="train-batch-size",
        help=field_spec("batch_size")["help"],
    )
    optimizer = choice("Optimizer", "optimizer", key="train-optimizer")
    learning_rate = st.select_slider(
        "Learning rate",
        train_form.learning_rate_choices(),
        key="train-learning-rate",
        format_func=lambda v: train_form.format_learning_rate(v, optimizer),
        help=field_spec("learning_rate")["help"],
    )
    spec = field_spec("epsilon")
    epsilon = st.select_slider(
        "BN epsilon",
        train_form.epsilon_choices(),
        value=spec["default"],
        format_func="{:.0e}".format,
        key="train-epsilon",
        help=spec["help"],
    )
    window_size = slider("BN inference window (batches)", "window_size", key="train-window-size")
    val_size = number("Validation images", "val_size", step=1000, key="train-val-size")
    quick_col, limit_col = st.columns(2, vertical_alignment="bottom")
    with quick_col:
        quick = st.checkbox(
            "Quick mode",
            key="train-quick",
            help="train on a subset of the training images (the test set stays complete)",
        )
    with limit_col:
        train_limit = number(
            "Training images (quick mode)",
            "train_limit",
            step=1000,
            disabled=not quick,
            key="train-train-limit",
        )

form = {
    "dataset": dataset,
    "epochs": epochs,
    "batch_size": batch_size,
    "optimizer": optimizer,
    "learning_rate": learning_rate,
    "epsilon": epsilon,
    "window_size": window_size,
    "activation": activation,
    "val_size": val_size,
    "train_limit": train_limit if quick else None,
    "probe_every": probe_every,
}
seeds = train_form.seed_list(int(seed), int(repeats))


def queue(configs, errors=()) -> None:
    for error in errors:
        st.error(error, icon=":material/error:")
    if errors:
        return
    try:
        ids = get_runner().submit(configs)
    except ConfigError as e:  # configs were checked above; this is the last line of defence
        st.error(str(e), icon=":material/error:")
    else:
        st.success(f"Queued {len(ids)} run(s): #{ids[0]}–#{ids[-1]}.", icon=":material/check:")
        st.page_link(RUNS_PAGE, label="Watch them on the Runs page", icon=":material/monitoring:")


st.divider()
n_runs = len(variants) * len(seeds)
st.write(
    f"**{n_runs} run{'s' * (n_runs != 1)}**: {len(variants)} variant(s) × {len(seeds)} seed(s) "
    f"({', '.join(map(str, seeds))})."
)
if st.button("Start", type="primary", icon=":material/play_arrow:", key="train-start"):
    queue(*train_form.train_configs(form, variants, seeds))
if preset is not None and study.PRESETS[preset].sweeps:
    grid = study.preset_configs(preset, st.session_state["train-preset-quick"], dataset=dataset)
    st.caption(f"This preset is a sweep: the form holds one point of its grid of {len(grid)} runs.")
    if st.button(f"Queue the whole preset ({len(grid)} runs)", key="train-preset-start"):
        queue(grid)

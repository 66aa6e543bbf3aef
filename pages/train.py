"""Train: pick a dataset, variants and hyperparameters; Start queues one run per (variant, seed).

Every default, limit and help text comes from TrainConfig's field metadata (field_spec); a
number outside its limits is refused with TrainConfig's message, never clamped. Start queues
nothing until the whole form is valid and the dataset is on this machine. Every widget keeps
its value for the whole session (``persist_state="session"``), starting from
``train_form.initial_form_state()``; a preset writes its values to the widgets' keys in the
selectbox's on_change callback, before the widgets exist.
"""

import streamlit as st

from bn_core.analysis import study
from bn_core.config import PROBE_EVERY_MIN, ConfigError, field_spec
from bn_core.runs.execution import caps
from bn_core.runs.store import StoreError
from bn_core.variants import VARIANT_NAMES, VARIANTS
from bn_core.views import train_form
from bn_core.vocabulary import RunStatus
from pages._cluster_ui import backend_choice
from pages._form import KEEP, choice, dataset_field, number, steps
from pages._runner import get_runner, get_store
from pages._ui import RUNS_PAGE, store_banner, use_navigation

use_navigation()
for key, value in train_form.initial_form_state().items():
    st.session_state.setdefault(key, value)


def apply_preset() -> None:
    name = st.session_state["train-preset"]
    if name is not None:
        st.session_state.update(
            train_form.train_form_state(name, st.session_state["train-preset-quick"])
        )


st.title("Train")
st.caption(
    "Queue LeNet-5 variants with the same settings. Runs train in background worker processes; "
    "watch them on the Runs page and compare them on the Compare page."
)
read_only = store_banner()  # why nothing can start (the store cannot be written), or None
preset_col, quick_col = st.columns([3, 1], vertical_alignment="bottom")
preset = preset_col.selectbox(
    "Preset",
    [None, *study.PRESETS],
    format_func=lambda n: "None" if n is None else f"{study.PRESETS[n].title} ({n})",
    key="train-preset",
    placeholder="None",  # the session's value None reads as "no choice yet"
    on_change=apply_preset,
    help="fill the form with one of the paper's studies",
    **KEEP,
)
quick_col.checkbox(
    "quick",
    key="train-preset-quick",
    on_change=apply_preset,
    help="the preset's quick version (a few minutes on 2 cores)",
    **KEEP,
)
if preset is not None:
    st.caption(study.PRESETS[preset].description)

left, right = st.columns(2, gap="large")
with left:
    st.subheader("Data and model")
    dataset, folder_text = dataset_field()

    variants = st.multiselect(
        "Variants", VARIANT_NAMES, key="train-variants", help=field_spec("variant")["help"], **KEEP
    )
    for name in variants:
        sites = ", ".join(VARIANTS[name].bn_sites) or "none"
        st.caption(f"**{name}** (BN at {sites}): {VARIANTS[name].description}")
    activation = choice("Activation", "activation")

    seeds_col, repeats_col = st.columns(2)
    with seeds_col:
        seed = number("Seed", "seed", 1)
    with repeats_col:
        repeats = number(
            "Repeats",
            "repeats",
            1,
            help="runs per variant, with seeds seed, seed+1, ... (for mean ± std on Compare)",
        )
    probe_every = number("Probe every k steps, 0: off", "probe_every", PROBE_EVERY_MIN)

with right:
    st.subheader("Training")
    epochs = steps("Epochs", "epochs")
    batch_size = st.select_slider(
        "Batch size",
        train_form.batch_size_choices(),
        key="train-batch-size",
        help=field_spec("batch_size")["help"],
        **KEEP,
    )
    optimizer = choice("Optimizer", "optimizer")
    learning_rate = st.select_slider(
        "Learning rate",
        train_form.learning_rate_choices(),
        key="train-learning-rate",
        format_func=lambda v: train_form.format_learning_rate(v, optimizer),
        help=field_spec("learning_rate")["help"],
        **KEEP,
    )
    epsilon = st.select_slider(
        "BN epsilon",
        train_form.epsilon_choices(),
        format_func="{:.0e}".format,
        key="train-epsilon",
        help=field_spec("epsilon")["help"],
        **KEEP,
    )
    window_size = steps("BN inference window (batches)", "window_size")
    val_size = number("Validation images", "val_size", 1000)
    quick_col, limit_col = st.columns(2, vertical_alignment="bottom")
    with quick_col:
        quick = st.checkbox(
            "Quick mode",
            key="train-quick",
            help="train on a subset of the training images (the test set stays complete)",
            **KEEP,
        )
    with limit_col:
        train_limit = number("Training images", "train_limit", 1000, disabled=not quick)

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
seeds = train_form.seed_list(seed, repeats)
configs, errors = train_form.train_configs(form, variants, seeds, folder_text)


def queue(configs) -> None:
    """Queue ``configs`` as one group, named by the Group name box, else by the preset, to
    execute where the "Run on" choice says."""
    typed = st.session_state.get("train-group-name", "").strip()
    try:
        ids = get_runner().submit(configs, group_name=typed or preset_title, backend=backend)
    except (ConfigError, StoreError) as e:  # configs were checked above; a full disk was not
        st.error(str(e), icon=":material/error:")
    else:
        st.success(f"Queued {len(ids)} run(s): #{ids[0]}–#{ids[-1]}.", icon=":material/check:")
        st.page_link(RUNS_PAGE, label="Watch them on the Runs page", icon=":material/monitoring:")


st.divider()
n_runs = len(variants) * len(seeds)
queued_now = get_store().count_runs((RunStatus.QUEUED,))
st.write(
    f"**{n_runs} run{'s' * (n_runs != 1)}**: {len(variants)} variant(s) × {len(seeds)} seed(s) "
    f"({', '.join(map(str, seeds)) or 'none'})."
)
st.caption(caps.submit_note(n_runs, queued_now))
preset_title = None
if preset is not None:
    preset_title = study.PRESETS[preset].title + (" (quick)" if quick else "")
st.text_input(
    "Group name",
    key="train-group-name",
    max_chars=80,
    placeholder=preset_title or "the variants, seeds and time",
    help="how the runs' group is shown on every page (rename it later on Compare)",
)
backend = backend_choice("train-backend")  # "local" unless a Ray cluster answers
cap_problem = caps.submit_problem(n_runs, queued_now)  # before the click: the button is off
if errors:
    st.error(
        "Start queues nothing until this is fixed:\n\n" + "\n".join(f"- {e}" for e in errors),
        icon=":material/error:",
    )
elif cap_problem:
    st.error(cap_problem, icon=":material/error:")
blocked = bool(errors or cap_problem or read_only)
if st.button(
    "Start",
    type="primary",
    icon=":material/play_arrow:",
    key="train-start",
    disabled=blocked,
    help=read_only,
):
    if not blocked:  # a disabled button cannot be clicked; a stale click queues nothing either
        queue(configs)
if preset is not None and study.PRESETS[preset].sweeps:
    quick_preset = st.session_state["train-preset-quick"]
    grid, grid_errors = train_form.preset_grid(preset, quick_preset, dataset, folder_text)
    size = len(study.preset_configs(preset, quick_preset))
    st.caption(f"This preset is a sweep: the form holds one point of its grid of {size} runs.")
    grid_problem = read_only or (
        grid_errors[0] if grid_errors else caps.submit_problem(size, queued_now)
    )
    if (
        st.button(
            f"Queue the whole preset ({size} runs)",
            key="train-preset-start",
            disabled=grid_problem is not None,
            help=grid_problem,
        )
        and grid_problem is None
    ):
        queue(grid)

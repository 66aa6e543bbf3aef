"""The Train form's widgets (imported as ``pages._form``): each TrainConfig field as a widget
keyed ``train-<field>`` that keeps its value for the whole session, and the dataset field with
its availability, download button and folder."""

from __future__ import annotations

import streamlit as st

from bn_core.config import field_spec
from bn_core.views import datasets, train_form

KEEP = {"persist_state": "session"}  # the value survives visits to other pages


def key_of(name: str) -> str:
    return f"train-{name.replace('_', '-')}"


def choice(label: str, name: str, help: str | None = None):
    spec = field_spec(name)
    return st.selectbox(label, spec["choices"], key=key_of(name), help=help or spec["help"], **KEEP)


def steps(label: str, name: str):
    """A select_slider over the values people pick (``train_form.step_choices``)."""
    options = train_form.step_choices(name, st.session_state.get(key_of(name)))
    return st.select_slider(label, options, key=key_of(name), help=field_spec(name)["help"], **KEEP)


def number(label: str, name: str, step: int, help: str | None = None, disabled: bool = False):
    """A number_input labelled with its limits; a value outside them gets TrainConfig's error
    under the field (Streamlit would silently clamp it to min_value/max_value)."""
    value = st.number_input(
        f"{label} ({train_form.limits_text(name)})",
        step=step,
        key=key_of(name),
        help=help or field_spec(name)["help"],
        disabled=disabled,
        **KEEP,
    )
    if not disabled and (error := train_form.field_error(name, value)):
        st.error(error, icon=":material/error:")
    return value


def download(dataset: str) -> None:
    bar, arrived = st.progress(0.0, text=f"Connecting to download {dataset} …"), []

    def report(done: int, total: int) -> None:
        arrived.append(done)
        text = datasets.progress_text(dataset, done, total)
        bar.progress(min(done / total, 1.0) if total else 1.0, text=text)

    path, error = datasets.download(dataset, report)
    if error:
        if not arrived:  # else the bar stays, showing how far it got
            bar.empty()
        st.error(error, icon=":material/error:")
    else:
        st.session_state["train-downloaded"] = f"Downloaded {dataset} to {path}."
        st.rerun()


def dataset_field() -> tuple[str, str | None]:
    """The dataset selectbox, what this machine has of it (a download button or a folder
    field when it is missing); returns (dataset, the folder text as typed)."""
    folder_text = st.session_state["train-data-dir"]
    dataset = choice("Dataset", "dataset", help=datasets.availability_help(folder_text))
    folder, folder_error = datasets.check_folder(folder_text, dataset)
    kind, message = datasets.dataset_status(dataset, folder)
    if note := st.session_state.pop("train-downloaded", None):
        st.success(note, icon=":material/check:")
    if kind == "local":
        st.caption(f":material/check_circle: **{dataset}**: {message}")
    else:
        st.warning(f"**{dataset}**: {message}", icon=":material/warning:")
    if kind == "download" and st.button(
        f"Download now (~{datasets.download_mb(dataset)} MB)",
        key="train-download",
        icon=":material/download:",
    ):
        download(dataset)
    with st.expander("Data folder", expanded=kind != "local" or bool(folder_text)):
        st.text_input(
            "Folder holding the dataset's files (optional)",
            key="train-data-dir",
            placeholder="/path/to/folder",
            help=datasets.folder_help(dataset),
            **KEEP,
        )
        if folder_error:
            st.error(folder_error, icon=":material/error:")
    return dataset, folder_text

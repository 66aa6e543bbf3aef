"""BN Lab dashboard: ``streamlit run app.py``. Only the navigation frame lives here; each page is
a script under pages/. TensorFlow is never imported in this process (runs train in workers)."""

import streamlit as st

from pages._ui import (
    ABOUT_PAGE,
    COMPARE_PAGE,
    NETWORK_PAGE,
    RUNS_PAGE,
    SWEEP_PAGE,
    TRAIN_PAGE,
    WINDOW_PAGE,
    get_runner,
)

st.set_page_config(page_title="BN Lab", page_icon=":material/science:", layout="wide")

get_runner()  # the process-wide scheduler: queued runs start whichever page is open

pages = [
    st.Page(
        TRAIN_PAGE, title="Train", icon=":material/play_circle:", url_path="train", default=True
    ),
    st.Page(RUNS_PAGE, title="Runs", icon=":material/monitoring:", url_path="runs"),
    st.Page(COMPARE_PAGE, title="Compare", icon=":material/compare_arrows:", url_path="compare"),
    st.Page(NETWORK_PAGE, title="Inside the network", icon=":material/hub:", url_path="network"),
    st.Page(WINDOW_PAGE, title="Window size", icon=":material/tune:", url_path="window"),
    st.Page(SWEEP_PAGE, title="Sweep", icon=":material/grid_on:", url_path="sweep"),
    st.Page(ABOUT_PAGE, title="About", icon=":material/info:", url_path="about"),
]
st.navigation(pages).run()

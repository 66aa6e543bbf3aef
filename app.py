"""BN Lab dashboard: ``streamlit run app.py``. Only the navigation frame lives here; each page is
a script under pages/. TensorFlow is never imported in this process (runs train in workers)."""

import streamlit as st

from pages._ui import ABOUT_PAGE, COMPARE_PAGE, RUNS_PAGE, TRAIN_PAGE, get_runner

st.set_page_config(page_title="BN Lab", page_icon=":material/science:", layout="wide")

get_runner()  # the process-wide scheduler: queued runs start whichever page is open

pages = [
    st.Page(
        TRAIN_PAGE, title="Train", icon=":material/play_circle:", url_path="train", default=True
    ),
    st.Page(RUNS_PAGE, title="Runs", icon=":material/monitoring:", url_path="runs"),
    st.Page(COMPARE_PAGE, title="Compare", icon=":material/compare_arrows:", url_path="compare"),
    st.Page(ABOUT_PAGE, title="About", icon=":material/info:", url_path="about"),
]
st.navigation(pages).run()

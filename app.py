"""BN Lab dashboard: ``streamlit run app.py``. Only the navigation frame lives here; each page is
a script under pages/. TensorFlow is never imported in this process (runs train in workers).

A page's URL is its file name (pages/runs.py -> /runs), the name Streamlit's pages-directory
mode also gives it: that mode serves a fresh server's first request, and pages/_ui.py's
use_navigation hands the page over to this file."""

from pathlib import Path

import streamlit as st

from bn_core.runs.store import StoreError
from pages._auth import logged_in, require_login
from pages._runner import get_runner
from pages._ui import (
    ABOUT_PAGE,
    CLUSTER_PAGE,
    COMPARE_PAGE,
    FRAMED,
    NETWORK_PAGE,
    RUNS_PAGE,
    SWEEP_PAGE,
    TRAIN_PAGE,
    WINDOW_PAGE,
)

# The favicon is a file of the app (sent inline as a data: URL): a ":material/...:" page icon
# makes the browser fetch it from fonts.gstatic.com, and no request may leave the machine.
ICON = Path(__file__).parent / "pages" / "assets" / "icon.svg"
st.set_page_config(page_title="BN Lab", page_icon=ICON, layout="wide")
st.session_state[FRAMED] = True

pages = [
    st.Page(TRAIN_PAGE, title="Train", icon=":material/play_circle:", default=True),
    st.Page(RUNS_PAGE, title="Runs", icon=":material/monitoring:"),
    st.Page(CLUSTER_PAGE, title="Cluster", icon=":material/lan:"),
    st.Page(COMPARE_PAGE, title="Compare", icon=":material/compare_arrows:"),
    st.Page(NETWORK_PAGE, title="Inside the network", icon=":material/hub:"),
    st.Page(WINDOW_PAGE, title="Window size", icon=":material/tune:"),
    st.Page(SWEEP_PAGE, title="Sweep", icon=":material/grid_on:"),
    st.Page(ABOUT_PAGE, title="About", icon=":material/info:"),
]
# .streamlit/config.toml turns the sidebar menu off so that the pages-directory mode never
# shows its menu of file names; that switch hides st.navigation's menu too, so turn it back on.
# The mode is over for good once st.navigation (below) has run.
st.set_option("client.showSidebarNavigation", True)
# The gate (BN_LAB_PASSWORD, secrets.toml): until this session has logged in, the menu is
# hidden and require_login draws only the login form and stops the script, so no page runs and
# no run starts. st.navigation still comes first: the page asked for (/runs) is the one shown
# once the login passes.
page = st.navigation(pages, position="sidebar" if logged_in() else "hidden")
require_login()
# The process-wide scheduler: queued runs start whichever page is open. A bad BN_LAB_* setting
# or an unusable store shows its one line instead, and no runner starts and no page runs.
get_runner()
try:
    page.run()
except StoreError as exc:  # the store failed mid-page (an I/O error, say): one line, no traceback
    st.error(str(exc), icon=":material/error:")

"""The gate in front of every page (imported as ``pages._auth``): ``require_login()`` lets a
session through, or draws only a login form and stops the script.

Which gate, first match wins:

1. ``[auth]`` in ``.streamlit/secrets.toml`` (an OpenID Connect provider, as Streamlit's
   ``st.login`` documents): a "Log in" button per provider; ``st.user.is_logged_in`` decides.
2. A password: ``$BN_LAB_PASSWORD`` (non-empty), else ``password`` in secrets.toml. One password
   field; success is remembered in ``st.session_state`` for that browser session.
3. Neither: no gate (the dashboard listens on 127.0.0.1 by default, scripts/run.sh).

It fails closed: a secrets file that exists but cannot be parsed, a non-string ``password`` or an
``[auth]`` section without a provider lock the app with a one-line message saying what to fix.
"""

from __future__ import annotations

import hmac
import importlib.util
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path

import streamlit as st
from streamlit.errors import StreamlitAuthError

from bn_core import settings
from pages._guesses import GUESSES

PASSWORD_ENV = "BN_LAB_PASSWORD"
PASSED = "bn-lab-login-passed"  # session_state key: this session gave the right password
FORM = "login"  # widget keys: login-password, login-submit (CSS classes .st-key-login-...)
LOGOUT = "logout"
WRONG = "Wrong password."
# Seconds a wrong password waits for its answer: a guesser gets about one try a second per
# session (a slower guess, not a lockout: someone else's typo costs them only a second).
WRONG_PAUSE_S = 1.0
BUSY = "Too many wrong passwords lately: try again in {seconds} s."
# Keys of [auth] that are mappings of the default provider itself, not named providers.
PROVIDER_SETTINGS = {"client_kwargs"}


class GateError(ValueError):
    """The login settings cannot be used; the message says what to fix."""


def password_matches(given: str, expected: str) -> bool:
    """True iff ``given == expected``, in time independent of where they first differ
    (``hmac.compare_digest`` on the UTF-8 bytes), so response times leak no prefix."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def configured_password(env: Mapping[str, str], secrets: Mapping) -> str | None:
    """The dashboard's password: ``env[BN_LAB_PASSWORD]`` when set and non-empty (read with
    ``bn_core.settings``), else the ``password`` entry of ``secrets``; None when neither (no
    password gate). Raises GateError for a secrets ``password`` that is not a non-empty string
    (an unquoted number in TOML)."""
    if password := settings.value(PASSWORD_ENV, env):
        return password
    if "password" not in secrets:
        return None
    value = secrets["password"]
    if not isinstance(value, str) or not value:
        raise GateError(
            "password in .streamlit/secrets.toml must be a non-empty quoted string, e.g. "
            f'password = "..."; received a {type(value).__name__}.'
        )
    return value


def oidc_providers(auth: Mapping) -> list[str | None]:
    """The providers an ``[auth]`` secrets section configures, in st.login's terms: None for
    the default one (``client_id`` directly under ``[auth]``), then each ``[auth.NAME]``."""
    named = [key for key, value in auth.items() if isinstance(value, Mapping)]
    named = [key for key in named if key not in PROVIDER_SETTINGS]
    return ([None] if "client_id" in auth else []) + named


def _secrets() -> Mapping:
    """st.secrets, or {} when there is no secrets file. A file that exists but does not parse
    raises GateError: treating it as absent would open a dashboard meant to be locked."""
    if st.secrets.load_if_toml_exists():
        return st.secrets
    broken = [path for path in st.get_option("secrets.files") if Path(path).exists()]
    if broken:
        raise GateError(f"{broken[0]} could not be read: fix its TOML syntax, then restart.")
    return {}


def _authlib_installed() -> bool:
    """st.login's OIDC client (an optional dependency of Streamlit)."""
    return importlib.util.find_spec("authlib") is not None


def _locked(message: str) -> None:
    st.error(message, icon=":material/lock:")
    st.stop()


def _oidc_gate(auth: Mapping, logout: bool) -> None:
    if st.user.is_logged_in:
        if logout:
            who = st.user.get("email") or st.user.get("name") or "signed in"
            st.sidebar.caption(f"Logged in: {who}")
            st.sidebar.button("Log out", key=LOGOUT, on_click=st.logout)
        return
    providers = oidc_providers(auth)
    if not providers:
        _locked("[auth] in .streamlit/secrets.toml names no provider: add client_id, or a table.")
    if not _authlib_installed():
        _locked("Logging in through [auth] needs Authlib: pip install 'Authlib>=1.3.2'.")
    for provider in providers:
        label = "Log in" if provider is None else f"Log in with {provider}"
        if st.button(label, key=f"{FORM}-{provider or 'default'}", type="primary"):
            try:
                st.login(provider)  # queues the browser's redirect to the provider
            except StreamlitAuthError as err:  # a missing redirect_uri, client_secret, ...
                st.error(f"[auth] in .streamlit/secrets.toml: {err}")
    st.stop()


def _forget() -> None:
    st.session_state.pop(PASSED, None)


def _password_gate(password: str, logout: bool) -> None:
    if st.session_state.get(PASSED):
        if logout:
            st.sidebar.button("Log out", key=LOGOUT, on_click=_forget)
        return
    # clear_on_submit: the typed text never stays in the browser or in session_state.
    with st.form(FORM, clear_on_submit=True, border=False):
        given = st.text_input(
            "Password", type="password", key=f"{FORM}-password", autocomplete="current-password"
        )
        submitted = st.form_submit_button("Log in", key=f"{FORM}-submit", type="primary")
    if submitted:
        verdict = GUESSES.attempt(lambda: password_matches(given, password), st.context.ip_address)
        if verdict is True:
            st.session_state[PASSED] = True
            st.rerun()  # draw the app without the form
        if verdict is False:
            time.sleep(WRONG_PAUSE_S)
            st.error(WRONG)
        else:
            st.error(BUSY.format(seconds=math.ceil(verdict)))
    st.stop()


def _gate() -> tuple[str, Mapping | str | None]:
    """("oidc", the [auth] section), ("password", the password) or ("open", None); GateError
    when the settings cannot be used."""
    secrets = _secrets()
    if "auth" in secrets:
        if not isinstance(secrets["auth"], Mapping):
            raise GateError("auth in .streamlit/secrets.toml must be a table: [auth] on its line.")
        return "oidc", secrets["auth"]
    password = configured_password(os.environ, secrets)
    return ("open", None) if password is None else ("password", password)


def logged_in() -> bool:
    """Whether ``require_login()`` lets this session through now; draws nothing (app.py asks
    it to decide whether to show the menu)."""
    try:
        kind, _ = _gate()
    except GateError:
        return False
    if kind == "oidc":
        return bool(st.user.is_logged_in)
    return kind == "open" or bool(st.session_state.get(PASSED))


def require_login(logout: bool = True) -> None:
    """Return only if this session may see the app; otherwise draw the login form (nothing
    else) and ``st.stop()``. Call it before any page content. ``logout`` draws the sidebar's
    "Log out" button: once per script run, so only the first of nested calls (app.py, then
    the page's use_navigation) asks for it."""
    try:
        kind, setting = _gate()
    except GateError as err:
        _locked(str(err))
    if kind == "oidc":
        _oidc_gate(setting, logout)
    elif kind == "password":
        _password_gate(setting, logout)

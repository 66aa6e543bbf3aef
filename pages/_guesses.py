"""Password guesses, limited per server process and per client address (imported as
``pages._guesses``; pages/_auth.py's password gate asks ``GUESSES`` before each comparison).

One browser session answers a wrong password after a second, but a guesser opens many: so the
checks themselves take turns, across every session of the process. Schedule (``Guesses``'
defaults): within 10 minutes, the first 20 failures of the process (3 of one address) space
the next check 1 s apart; each further failure doubles the spacing (2, 4, 8, 16, 32 s), up to
60 s; a check whose turn is more than 10 s away is refused at once, unchecked. Streamlit gives
the client's address only for connections that are not from this machine
(``st.context.ip_address``; behind a local proxy every client shares the process's limit).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("bn_lab.auth")
if not log.handlers:  # the server's stderr, with the time: one line per failed attempt
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    log.addHandler(_handler)
    log.setLevel(logging.INFO)


@dataclass
class _Bucket:
    """The attempts of one client address, or of the whole process."""

    free: int  # failures (in the window) whose next check waits only ``base_s``
    failures: deque = field(default_factory=deque)  # monotonic times of wrong passwords
    pending: int = 0  # attempts admitted, not yet answered (counted as failures in advance)
    not_before: float = 0.0  # the next check may not start earlier


class Guesses:
    """Password checks, spaced across every session of this server process (and, where
    Streamlit knows the client's address, per address), so that parallel sessions guess no
    faster than one. Each check waits for its turn: after the n-th failure within ``window_s``
    (the attempts in flight counted as failures), the next check starts at least
    ``gap(n)`` later: ``base_s`` up to ``free`` failures, then doubling (2, 4, 8, ... s), at
    most ``cap_s``. The right password is checked at once when no one has guessed lately.
    An attempt whose turn is more than ``max_wait_s`` away is refused at once, unchecked (no
    pile of waiting sessions). Quiet for ``window_s``, the schedule starts again; the right
    password clears its address's failures (the process's keep counting: a guesser behind the
    same proxy gains nothing from someone else's login). Each failure is logged (time,
    address, counts; never the password)."""

    def __init__(
        self,
        *,
        window_s: float = 600.0,
        base_s: float = 1.0,
        cap_s: float = 60.0,
        process_free: int = 20,
        client_free: int = 3,
        max_wait_s: float = 10.0,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.window_s, self.base_s, self.cap_s, self.max_wait_s = (
            window_s,
            base_s,
            cap_s,
            max_wait_s,
        )
        self.client_free, self.max_clients = client_free, max_clients
        self.clock, self.sleep = clock, sleep
        self.process = _Bucket(process_free)
        self.clients: dict[str, _Bucket] = {}
        self.lock = threading.Lock()

    def gap(self, failures: int, free: int) -> float:
        """Seconds between a check and the next after ``failures`` failures."""
        if failures <= free:
            return self.base_s
        return min(self.cap_s, self.base_s * 2 ** (failures - free))

    def attempt(self, matches: Callable[[], bool], client: str | None = None) -> bool | float:
        """``matches()`` (the comparison) when this attempt's turn comes: True for the right
        password, False for a wrong one, or the seconds to wait when refused unchecked."""
        with self.lock:
            now = self.clock()
            buckets = self._buckets(client, now)
            start = max([now] + [b.not_before for b in buckets])
            if start - now > self.max_wait_s:
                log.warning(
                    "Login refused unchecked (too many wrong passwords) from %s", _who(client)
                )
                return start - now
            for b in buckets:
                b.pending += 1
                b.not_before = start + self.gap(len(b.failures) + b.pending, b.free)
        try:
            if start > now:
                self.sleep(start - now)
            right = matches()
        finally:  # a check that raised must not keep its turn counted forever
            with self.lock:
                for b in buckets:
                    b.pending -= 1
        with self.lock:
            if right:
                if client is not None:
                    self.clients.pop(client, None)
                return True
            now = self.clock()
            for b in buckets:
                b.failures.append(now)
            n, wait = len(self.process.failures), max(self.process.not_before - now, 0.0)
        log.warning(
            "Wrong password from %s: %d in the last %.0f min here, next check in %.0f s",
            _who(client),
            n,
            self.window_s / 60,
            wait,
        )
        return False

    def _buckets(self, client: str | None, now: float) -> list[_Bucket]:
        for b in (self.process, *self.clients.values()):
            while b.failures and b.failures[0] <= now - self.window_s:
                b.failures.popleft()
        if len(self.clients) >= self.max_clients:  # forget the quiet ones first
            for key in [k for k, b in self.clients.items() if not b.failures and not b.pending]:
                del self.clients[key]
        if client is None:
            return [self.process]
        if client not in self.clients and len(self.clients) >= self.max_clients:
            return [self.process]  # too many addresses at once: the process limit holds
        return [self.process, self.clients.setdefault(client, _Bucket(self.client_free))]


GUESSES = Guesses()  # this server process's: every session's login goes through it


def _who(client: str | None) -> str:
    return client or "an unknown address (this machine, or a proxy)"

"""Waiting on an observable condition with a deadline: the one polling helper of the e2e
suite, the demo and the benchmarks (no sleep stands in for synchronisation)."""

from __future__ import annotations

import ssl
import time
import urllib.request
from typing import Callable


def poll(what: str, check: Callable[[], object], timeout: float, interval: float = 0.1,
         describe: Callable[[], str] | None = None):
    """Calls check() until it returns something truthy (returned) or `timeout` seconds pass
    (AssertionError naming `what` and, if given, describe()'s view of the state)."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            detail = describe() if describe else repr(got)
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}: {detail}")
        time.sleep(interval)


def http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    """Whether a GET of `url` answers 200 within 2 s (False while nothing listens yet, or on
    any other answer)."""
    try:
        with urllib.request.urlopen(url, context=context, timeout=2) as r:
            return r.status == 200
    except OSError:  # URLError, HTTPError, ssl.SSLError, refused, timed out
        return False


def wait_http_ok(what: str, url: str, timeout: float, alive: Callable[[], None] | None = None,
                 context: ssl.SSLContext | None = None, interval: float = 0.1,
                 describe: Callable[[], str] | None = None) -> None:
    """Polls `url` until it answers 200. `alive` is called first on every round and raises when
    the process that should answer has exited, so a crash fails at once, not at the deadline."""
    def check() -> bool:
        if alive is not None:
            alive()
        return http_ok(url, context)
    poll(what, check, timeout, interval, describe)

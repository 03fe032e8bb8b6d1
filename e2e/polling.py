"""Waiting on an observable condition with a deadline: the one polling helper of the e2e
suite, the demo and the benchmarks (no sleep stands in for synchronisation)."""

from __future__ import annotations

import time
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

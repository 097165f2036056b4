"""Polling with a deadline: the one way tests wait for an outcome (never a bare sleep)."""
import time


def wait_for(predicate, timeout, interval=0.05, what="condition", exc=AssertionError):
    """Polls predicate() until it returns a true value (returned) or the deadline passes (raises exc)."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > deadline:
            raise exc(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)

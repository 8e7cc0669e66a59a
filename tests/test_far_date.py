"""The far-date pass (`make test-far-date`, run by CI) really moves the clock of every process.

The suite runs a second time with the wall clock 400 days away, through `.ci/timeshift.c`
preloaded into pytest and everything it starts. These tests prove the shift is what it claims:
the wall clock moved by exactly TIMESHIFT_SECONDS (the kernel's file times are not moved, so they
show the real time), child processes and Chromium see the same shifted clock, and sleeps and
timed waits keep their real length. In an ordinary run the shift is 0 and the same checks hold.
"""

import os
import subprocess
import sys
import threading
import time

import pytest

SHIFT_S = int(os.environ.get("TIMESHIFT_SECONDS") or 0)


def _real_now(tmp_path) -> float:
    """The kernel's time: the modification time it gives a file written now (never shifted)."""
    probe = tmp_path / "probe"
    probe.write_bytes(b"")
    return probe.stat().st_mtime


def test_it_moves_the_wall_clock_by_the_shift(tmp_path):
    assert abs(time.time() - _real_now(tmp_path) - SHIFT_S) < 5


def test_a_child_process_sees_the_same_clock():
    child = subprocess.run([sys.executable, "-c", "import time; print(time.time())"], capture_output=True, check=True)
    assert abs(float(child.stdout) - time.time()) < 5


def test_sleeps_and_timed_waits_keep_their_real_length():
    started = time.monotonic()
    time.sleep(0.05)
    threading.Event().wait(0.05)
    assert 0.1 <= time.monotonic() - started < 5


@pytest.mark.browser
def test_chromium_sees_the_same_clock(chromium):
    page = chromium.new_page()
    try:
        browser_now_s = page.evaluate("Date.now()") / 1000
    finally:
        page.close()
    assert abs(browser_now_s - time.time()) < 30

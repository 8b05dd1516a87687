"""benchmarks/speed.py's guard against a preparation (compilation) that never ends: the block is stopped
with TimeoutError after its limit, and the previous SIGALRM handler and timer are restored."""
from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).resolve().parents[1] / "benchmarks"))

from speed import time_limit  # noqa: E402


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs SIGALRM")
def test_time_limit_stops_a_long_block_and_restores_the_handler():
    before = signal.getsignal(signal.SIGALRM)
    started = time.perf_counter()
    with pytest.raises(TimeoutError, match="stopped after 0.2 s"):
        with time_limit(0.2):
            while True:                       # pure Python, as inductor's sympy simplification is
                sum(range(1000))
    assert time.perf_counter() - started < 2
    assert signal.getsignal(signal.SIGALRM) is before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    with time_limit(5):                       # a block within its limit is left alone
        time.sleep(0.01)
    with time_limit(0):                       # 0: no limit
        time.sleep(0.01)

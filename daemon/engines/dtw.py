"""Dynamic time warping for openai-whisper's word timestamps on the CPU, in NumPy.

openai-whisper aligns the tokens of each window with its audio frames by DTW; on the CPU it
calls ``whisper.timing.dtw_cpu``, a Numba function compiled with ``parallel=True``. That
costs twice, once per process and for good:

* compiling it takes about 6 s of CPU time (every service start, every ``whisperd
  transcribe``, every test subprocess), although the loop inside is serial;
* Numba's parallel runtime then sets the OpenMP thread count *of the calling thread* to the
  machine's core count, and torch shares that OpenMP runtime: from the first aligned window
  on, a worker decodes with as many threads as the machine has cores, whatever
  ``OMP_NUM_THREADS`` says. Three nodes limited to one thread each on two cores then spun on
  OpenMP barriers and ran ten times slower than one node (the cluster test timed out).

:func:`dtw_cpu` computes the same path: the same recurrence in float32 cells over float64
costs, the same tie-breaking, the same backtrace (``tests/engines/test_dtw.py`` compares
the two on random and tied matrices). It walks the anti-diagonals, whose cells depend only
on the two before, so each step is a few strided NumPy slices: about 20 ms for a 30 s window
of 60 tokens, against seconds of decoding. :func:`install` points openai-whisper at it.
"""

from __future__ import annotations

import threading

import numpy as np

_lock = threading.Lock()
replaced = None  # openai-whisper's own dtw_cpu, once install() has put this one instead


def dtw_cpu(x: np.ndarray) -> np.ndarray:
    """The (token, frame) path through cost matrix ``x`` (N×M), as ``whisper.timing``."""
    x = np.asarray(x, dtype=np.float64)
    n, m = x.shape
    width = m + 1
    cost = np.full((n + 1) * width, np.inf, dtype=np.float32)
    trace = np.full((n + 1) * width, -1, dtype=np.int8)
    cost[0] = 0
    for d in range(2, n + m + 1):  # cells (i, j) with i + j = d, i in [lo, hi]
        lo, hi = max(1, d - m), min(n, d - 1)
        if lo > hi:
            continue
        # cell (i, d - i) lies at i * width + d - i = i * m + d: a stride of m
        at = slice(lo * m + d, hi * m + d + 1, m)
        c0 = cost[lo * m + d - m - 2 : hi * m + d - m - 1 : m]  # (i - 1, j - 1)
        c1 = cost[lo * m + d - m - 1 : hi * m + d - m : m]  # (i - 1, j)
        c2 = cost[lo * m + d - 1 : hi * m + d : m]  # (i, j - 1)
        first = (c0 < c1) & (c0 < c2)
        second = ~first & (c1 < c0) & (c1 < c2)
        best = np.where(first, c0, np.where(second, c1, c2))
        rows = np.arange(lo, hi + 1)
        costs = x[rows - 1, d - rows - 1]  # x[i - 1, j - 1]
        cost[at] = costs + best  # float64 sum stored in float32, as in whisper's loop
        trace[at] = np.where(first, 0, np.where(second, 1, 2))
    return _backtrace(trace.reshape(n + 1, width))


def _backtrace(trace: np.ndarray) -> np.ndarray:
    """``whisper.timing.backtrace`` in plain Python: that one is Numba too, and compiling it
    costs 0.85 s per process against 7 ms for walking a 60×1500 trace here."""
    i, j = trace.shape[0] - 1, trace.shape[1] - 1
    trace[0, :] = 2
    trace[:, 0] = 1
    rows = trace.tolist()
    result = []
    while i > 0 or j > 0:
        result.append((i - 1, j - 1))
        t = rows[i][j]
        if t == 0:
            i -= 1
            j -= 1
        elif t == 1:
            i -= 1
        elif t == 2:
            j -= 1
        else:
            raise ValueError("Unexpected trace[i, j]")
    return np.array(result)[::-1, :].T


def install() -> None:
    """Make openai-whisper's CPU alignment use :func:`dtw_cpu` (once per process)."""
    global replaced
    with _lock:
        import whisper.timing as timing

        if timing.dtw_cpu is not dtw_cpu:
            replaced, timing.dtw_cpu = timing.dtw_cpu, dtw_cpu

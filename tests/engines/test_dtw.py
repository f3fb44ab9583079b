"""The NumPy DTW finds the very path of openai-whisper's own (its Python source, run as is)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from daemon.engines import dtw


def whispers_dtw(x: np.ndarray) -> np.ndarray:
    import whisper.timing as timing

    original = timing.dtw_cpu if timing.dtw_cpu is not dtw.dtw_cpu else dtw.replaced
    return original.py_func(x)  # the loop as written, without compiling it in parallel


@pytest.mark.parametrize(("n", "m"), [(1, 1), (1, 7), (7, 1), (3, 5), (12, 40), (40, 12),
                                      (25, 300)])  # fmt: skip
def test_the_same_path_as_openai_whisper(n: int, m: int) -> None:
    rng = np.random.default_rng(n * 1000 + m)
    for x in (rng.standard_normal((n, m)), rng.integers(-2, 3, (n, m)).astype(np.float64)):
        mine, theirs = dtw.dtw_cpu(x), whispers_dtw(x)  # the second has many ties
        assert mine.dtype == theirs.dtype and mine.shape == theirs.shape
        np.testing.assert_array_equal(mine, theirs)


def test_a_path_through_an_attention_like_matrix_is_monotonic() -> None:
    frames = np.arange(300)
    centres = np.linspace(10, 290, 20)
    x = -np.exp(-((frames[None, :] - centres[:, None]) ** 2) / 50.0)  # token k near centre k
    tokens, at = dtw.dtw_cpu(x)
    assert tokens[0] == 0 and tokens[-1] == 19 and at[-1] == 299
    assert np.all(np.diff(tokens) >= 0) and np.all(np.diff(at) >= 0)
    first = {int(t): int(a) for t, a in zip(tokens[::-1], at[::-1], strict=True)}
    assert all(abs(first[k] - centres[k]) < 20 for k in range(1, 20))


ALIGN_IN_A_THREAD = """
import sys, threading, torch
from daemon.engines import dtw
if sys.argv[1] == "install":
    dtw.install()
import whisper.timing
seen = []
def worker():
    whisper.timing.dtw(torch.randn(8, 50))
    seen.append(torch.get_num_threads())
thread = threading.Thread(target=worker)
thread.start()
thread.join()
print(seen[0])
"""


def test_alignment_keeps_the_thread_count_the_operator_set() -> None:
    """openai-whisper's Numba DTW set the calling thread's OpenMP threads to the core count
    (torch shares them): OMP_NUM_THREADS=1 then held only until the first aligned window."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def threads_after(mode: str) -> int:
        done = subprocess.run([sys.executable, "-c", ALIGN_IN_A_THREAD, mode], env=env,
                              capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
        return int(done.stdout.split()[-1])

    assert threads_after("install") == 1
    if (os.cpu_count() or 1) > 1:  # the test can fail: openai-whisper's own DTW changes it
        assert threads_after("numba") > 1

"""Complexity features: worked examples with known answers, the sparse schedule, and Arena's kernels held to the
libraries they mirror (antropy for fractal dimensions and entropies, nolds for the Lyapunov exponent)."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from arena_lib.features import complexity
from arena_lib.features.pipeline import compute_features
from tests.features.conftest import bars

RNG = np.random.default_rng(20240101)


def test_hurst_on_random_walk_trend_and_mean_reversion() -> None:
    steps = RNG.standard_normal(6000) * 0.01
    walk = compute_features(bars(100 * np.exp(np.cumsum(steps))), ["hurst_720"])["hurst_720"]
    assert walk.iloc[-3000:].mean() == pytest.approx(0.5, abs=0.05)
    trend = compute_features(bars(100 * np.exp(np.cumsum(steps * 0.2 + 0.003))), ["hurst_720"])["hurst_720"]
    assert trend.iloc[-1] > 0.8
    ar = np.zeros(6000)  # returns with negative autocorrelation: mean-reverting prices
    for i in range(1, 6000):
        ar[i] = -0.6 * ar[i - 1] + steps[i]
    reverting = compute_features(bars(100 * np.exp(np.cumsum(ar))), ["hurst_720"])["hurst_720"]
    assert reverting.iloc[-3000:].mean() < 0.35


def test_sample_entropy_is_lower_on_a_sine_than_on_noise() -> None:
    t = np.arange(1500)
    sine = compute_features(bars(100 * np.exp(0.05 * np.sin(2 * np.pi * t / 50))), ["sampen_128"])["sampen_128"]
    noise = compute_features(bars(100 * np.exp(np.cumsum(RNG.standard_normal(1500) * 0.01))), ["sampen_128"])
    assert sine.iloc[-1] < 0.5 < 1.5 < noise["sampen_128"].iloc[-1]


def test_sparse_features_change_only_on_their_schedule(eth: pd.DataFrame) -> None:
    out = compute_features(eth, ["lyap_336", "sampen_128"])
    lyap_changes = out.index[out["lyap_336"].diff().fillna(0) != 0]
    assert len(lyap_changes) > 50
    assert (lyap_changes.hour == 23).all()
    sampen_changes = out.index[out["sampen_128"].diff().fillna(0) != 0]
    assert ((sampen_changes.hour + 1) % 4 == 0).all()


# -- kernels held to the libraries they mirror -----------------------------------------------------------------------
def _nolds_measures() -> ModuleType:
    """``nolds.measures``; nolds 0.6.3's package __init__ fails on Python 3.11 (its datasets module calls
    ``importlib.resources.files`` on a module), so load the self-contained measures module from its file."""
    try:
        import nolds

        return nolds.measures  # type: ignore[no-any-return]
    except TypeError:
        spec = importlib.util.find_spec("nolds")
        assert spec is not None
        assert spec.submodule_search_locations
        path = f"{next(iter(spec.submodule_search_locations))}/measures.py"
        loader_spec = importlib.util.spec_from_file_location("nolds_measures_only", path)
        assert loader_spec is not None
        assert loader_spec.loader is not None
        module = importlib.util.module_from_spec(loader_spec)
        loader_spec.loader.exec_module(module)
        return module


def test_lyapunov_kernel_equals_nolds_lyap_r(eth: pd.DataFrame) -> None:
    measures = _nolds_measures()
    r = np.diff(np.log(eth["close"].to_numpy()))
    p = complexity.LYAP_PARAMS
    for start in (0, 900, 2100):
        w = np.ascontiguousarray(r[start : start + 336])
        ours = complexity.lyap_rosenstein(w, p["emb_dim"], p["lag"], p["min_tsep"], p["trajectory_len"])
        theirs = measures.lyap_r(w, fit="poly", **p)
        assert ours == pytest.approx(theirs, rel=1e-9)
    chaotic = np.empty(400)  # the logistic map at r=3.9 is chaotic: a clearly positive exponent
    chaotic[0] = 0.3
    for i in range(1, 400):
        chaotic[i] = 3.9 * chaotic[i - 1] * (1 - chaotic[i - 1])
    assert complexity.lyap_rosenstein(chaotic, 6, 1, 12, 16) == pytest.approx(
        measures.lyap_r(chaotic, fit="poly", **p), rel=1e-9
    )
    assert complexity.lyap_rosenstein(chaotic, 6, 1, 12, 16) > 0.2


def test_fractal_and_entropy_kernels_equal_antropy(eth: pd.DataFrame) -> None:
    antropy = pytest.importorskip("antropy")  # slow import (it compiles its numba kernels), once for this test
    logp = np.log(eth["close"].to_numpy())
    r = np.diff(logp)
    out = compute_features(eth, ["fd_higuchi_128", "fd_katz_128", "perm_entropy_168", "sampen_128"])
    for row in (500, 1333, 2201):  # sampen is evaluated on rows closing at multiples of 4 hours
        w = logp[row - 127 : row + 1]
        assert out["fd_higuchi_128"].iloc[row] == pytest.approx(antropy.higuchi_fd(w, kmax=10), rel=1e-12)
        assert out["fd_katz_128"].iloc[row] == pytest.approx(antropy.katz_fd(w), rel=1e-12)
        rets = r[row - 170 : row]
        assert out["perm_entropy_168"].iloc[row] == pytest.approx(
            antropy.perm_entropy(rets, order=3, normalize=True), rel=1e-12
        )
        last_eval = row - (eth.index[row].hour + 1) % 4
        assert out["sampen_128"].iloc[row] == pytest.approx(
            antropy.sample_entropy(r[last_eval - 128 : last_eval], order=2), rel=1e-12
        )

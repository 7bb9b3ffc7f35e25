"""Regression tests for the classes of bugs planted in an audit of the suite: each plants one realistic
bug in a fast path and asserts that the generic harness, on the form's standard samples, catches it.

(Bugs planted in the references are the forms' mutants, caught by tests/forms/test_invariants.py; seeds
that do not reach training are caught by the synthetic-task tests.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from attnlab.forms import get_form
from attnlab.testing.parity import Implementation, forward, gradients
from attnlab.testing.samples import gradient_samples, parity_samples

torch.set_num_threads(1)


def _caught(form_name: str, path_name: str, fn: Callable[..., Any], dtype: str = "float32") -> list[str]:
    form = get_form(form_name)
    path = form.fast_path(path_name)
    impl = dataclasses.replace(Implementation.of(path), fn=fn)
    return [s.label for s in parity_samples(form, path) if not forward(form, impl, s, dtype).passed]


def _torch_softmax():
    return get_form("softmax").fast_path("torch").load()


def test_an_ignored_scale_is_caught() -> None:
    good = _torch_softmax()

    def ignores_scale(q, k, v, *, scale=None, **kwargs):
        return good(q, k, v, **kwargs)

    assert any("scale=" in label for label in _caught("softmax", "torch", ignores_scale))


def test_a_dropped_last_partial_key_tile_is_caught() -> None:
    good = get_form("softmax").fast_path("numba").load()

    def drops_partial_tile(q, k, v, *, mask=None, **kwargs):
        m = k.shape[-2]
        full = 256 * (m // 256)
        if full == 0 or full == m:
            return good(q, k, v, mask=mask, **kwargs)
        keep = np.zeros((q.shape[-2], m), dtype=bool)
        keep[:, :full] = True
        return good(q, k, v, mask=keep if mask is None else keep & mask, **kwargs)

    caught = _caught("softmax", "numba", drops_partial_tile)
    assert caught and all(any(f"m{t}" in label or f"n{t}" in label for t in (257, 520)) for label in caught), caught


def test_a_causal_off_by_one_is_caught() -> None:
    good = _torch_softmax()

    def leaky(q, k, v, *, causal=False, mask=None, **kwargs):
        if not causal:
            return good(q, k, v, mask=mask, **kwargs)
        n, m = q.shape[-2], k.shape[-2]
        tri = torch.ones(n, m, dtype=torch.bool).tril(m - n + 1)
        return good(q, k, v, mask=tri if mask is None else tri & torch.as_tensor(mask), **kwargs)

    assert any("causal" in label for label in _caught("softmax", "torch", leaky))


def test_a_wrong_head_map_is_caught() -> None:
    good = _torch_softmax()

    def interleaved(q, k, v, **kwargs):
        if k.shape[-3] in (1, q.shape[-3]):
            return good(q, k, v, **kwargs)
        heads = torch.arange(q.shape[-3]) % k.shape[-3]
        return good(q, k[..., heads, :, :], v[..., heads, :, :], **kwargs)

    assert any("Hkv2" in label for label in _caught("softmax", "torch", interleaved))


def test_a_top_left_mask_in_the_shared_torch_helper_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The oracle builds its own visibility: a top-left bug in the fast paths' mask helper cannot hide."""
    import attnlab.fastpath.torch.softmax as module

    original = module.allowed_mask

    def top_left(n, m, *, causal, mask, lead, device):
        if not causal:
            return original(n, m, causal=False, mask=mask, lead=lead, device=device)
        tri = torch.ones(n, m, dtype=torch.bool, device=device).tril()
        user = original(n, m, causal=False, mask=mask, lead=lead, device=device)
        return tri if user is None else tri & user

    monkeypatch.setattr(module, "allowed_mask", top_left)
    form = get_form("softmax")
    path = form.fast_path("torch")
    impl = Implementation.of(path)
    caught = [s.label for s in parity_samples(form, path) if not forward(form, impl, s, "float32").passed]
    assert any("causal" in label for label in caught), caught


def test_a_wrong_rope_frequency_in_the_torch_mla_path_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    import attnlab.fastpath.torch.mla as module

    original = module.rope_interleaved
    monkeypatch.setattr(
        module, "rope_interleaved", lambda x, positions, base=10000.0: original(x, positions, base * 2.0)
    )
    form = get_form("mla")
    path = form.fast_path("torch")
    impl = Implementation.of(path)
    assert any(not forward(form, impl, s, "float64").passed for s in parity_samples(form, path))


def test_a_dropped_gradient_term_is_caught() -> None:
    form = get_form("linear")
    path = form.fast_path("numba")
    vjp = path.load_vjp()
    assert vjp is not None

    def missing_denominator_path(grad, q, k, v, **kwargs):
        dq, dk, dv = vjp(grad, q, k, v, **kwargs)
        return dq, 0.99 * dk, dv  # a lost share of dk (the normaliser's contribution)

    impl = dataclasses.replace(Implementation.of(path), vjp=missing_denominator_path)
    failures = [r for s in gradient_samples(form, path) for r in gradients(form, impl, s, "float64") if not r.passed]
    assert failures and {r.argument for r in failures} == {"k"}

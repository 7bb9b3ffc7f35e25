"""Leading axes are batch axes, for every form: an operator on ``(..., n, d)`` arrays treats each leading
index alone, whatever the number of leading axes.

Two evaluations of the same call are compared with the reference's output: the inputs with one more
leading unit axis (output gains that axis), and one batch element at a time (the output's slice). They
catch code that names an axis from the front (``axis=2`` for ``axis=-2``), which agrees with the right
axis for one rank of input only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from attnlab.forms import all_forms
from attnlab.testing.samples import fixed_samples

FORMS = all_forms()


def _leaves(out: Any) -> list[np.ndarray]:
    if isinstance(out, tuple | list):
        return [leaf for part in out for leaf in _leaves(part)]
    if isinstance(out, dict):
        return [leaf for key in sorted(out) for leaf in _leaves(out[key])]
    return [np.asarray(out)]


def _batch_names(form: Any, sample: Any) -> set[str]:
    """The array arguments that carry the batch axes (declared, or those of the first argument's rank)."""
    named = {**dict(zip(form.array_args, sample.args)), **sample.kwargs}
    if form.batch_args is not None:
        return {key for key in form.batch_args if isinstance(named.get(key), np.ndarray)}
    rank = np.ndim(sample.args[0])
    return {key for key, a in named.items() if isinstance(a, np.ndarray) and a.ndim >= rank}


def _map_batched(form: Any, sample: Any, fn: Any) -> tuple[tuple, dict]:
    names = _batch_names(form, sample)
    positional = list(form.array_args) + [""] * (len(sample.args) - len(form.array_args))
    args = tuple(fn(a) if key in names else a for key, a in zip(positional, sample.args))
    kwargs = {key: fn(a) if key in names else a for key, a in sample.kwargs.items()}
    return args, kwargs


def _close(got: Any, want: Any, what: str) -> None:
    got_leaves, want_leaves = _leaves(got), _leaves(want)
    assert len(got_leaves) == len(want_leaves), what
    for g, w in zip(got_leaves, want_leaves):
        assert g.shape == w.shape, f"{what}: shape {g.shape}, expected {w.shape}"
        scale = max(1.0, float(np.max(np.abs(w)))) if w.size and w.dtype.kind in "fc" else 1.0
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-12 * scale, err_msg=what)


def _rank(sample: Any) -> int:
    return np.ndim(sample.args[0])


@pytest.mark.parametrize("form", FORMS, ids=[f.name for f in FORMS])
def test_a_leading_unit_axis_is_carried_through(form) -> None:
    checked = 0
    for sample in fixed_samples(form):
        rank = _rank(sample)
        if rank < 2:
            continue
        out = sample.call(form.reference)
        args, kwargs = _map_batched(form, sample, lambda a: a[None])
        _close(
            form.reference(*args, **kwargs), [leaf[None] for leaf in _leaves(out)], f"{sample.label} with a unit axis"
        )
        checked += 1
    assert checked >= 2


@pytest.mark.parametrize("form", FORMS, ids=[f.name for f in FORMS])
def test_each_batch_element_computes_alone(form) -> None:
    checked = 0
    for sample in fixed_samples(form):
        rank = _rank(sample)
        if rank < 3:
            continue
        batch = np.shape(sample.args[0])[0]
        named = {**dict(zip(form.array_args, sample.args)), **sample.kwargs}
        sizes = {named[key].shape[0] for key in _batch_names(form, sample)}
        if sizes - {1, batch}:
            continue  # the first axis is not a batch axis shared by the arrays (e.g. a GQA head axis)
        out = _leaves(sample.call(form.reference))
        for b in range(batch):
            args, kwargs = _map_batched(form, sample, lambda a, b=b, size=batch: a[b] if a.shape[0] == size else a[0])
            _close(form.reference(*args, **kwargs), [leaf[b] for leaf in out], f"{sample.label}: element {b} alone")
        checked += 1
    assert checked >= 1

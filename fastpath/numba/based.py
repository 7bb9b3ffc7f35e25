"""Numba fast path of BASED (Arora et al. 2024, arXiv 2402.18668; see :mod:`attnlab.reference.based`).

Linear layer: the Taylor features in NumPy (in the input dtype), then the chunked linear-attention
kernel of :mod:`attnlab.fastpath.numba.linear` with the identity map. Window layer: the windowed
flash kernel of :mod:`attnlab.fastpath.numba.gna` on the contiguous band
``i + m − n − w < j <= i + m − n``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.fastpath.numba._common import fast_dtype, float_arrays
from attnlab.fastpath.numba.gna import windowed_attention
from attnlab.fastpath.numba.linear import linear_attention
from attnlab.reference.based import DEFAULT_EPS, DEFAULT_WINDOW, _check_eps, based_fast_path_options, taylor_features
from attnlab.validation import check_last_dim, check_positive_int, numba_checked


def _identity(x: np.ndarray) -> np.ndarray:
    return x


@numba_checked
def based_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    layer: str = "linear",
    causal: bool = True,
    eps: float = DEFAULT_EPS,
    layout: str = "full",
    form: str = "quadratic",
    chunk_size: int = 64,
    initial_state: Any = None,
    return_state: bool = False,
    window: int | None = None,
    scale: float | None = None,
    mask: Any = None,
) -> np.ndarray:
    """BASED's linear or window layer (same call as the reference, without recurrent state).

    Returns ``(..., H, n, d_v)`` in the input float dtype.
    """
    causal = based_fast_path_options(
        "Numba",
        layer=layer,
        causal=causal,
        form=form,
        layout=layout,
        chunk_size=chunk_size,
        eps=eps,
        window=window,
        scale=scale,
        mask=mask,
        initial_state=initial_state,
        return_state=return_state,
    )
    dtype = fast_dtype(q, k, v)
    q, k, v = float_arrays(("q", "k", "v"), (q, k, v), dtype)
    check_last_dim("k", k, q.shape[-1], "d_k, the last axis of q")
    if layer == "window":
        if not causal:
            raise ValueError("causal: BASED's sliding-window layer is causal; expected causal=True")
        width = check_positive_int("window", DEFAULT_WINDOW if window is None else window)
        n, m = q.shape[-2], k.shape[-2]
        width = min(width, m)  # a window past the first key sees every key
        last = np.arange(n) + (m - n)
        return windowed_attention(
            q, k, v, np.maximum(last - width + 1, 0), np.clip(last + 1, 0, m), scale=scale, mask=mask
        )
    fq, fk = (taylor_features(x, layout=layout).astype(dtype, copy=False) for x in (q, k))
    return linear_attention(fq, fk, v, feature_map=_identity, causal=causal, eps=_check_eps(eps))

"""Attach the Numba fast paths to the operator registry (imported lazily by :mod:`attnlab.registry`)."""

from __future__ import annotations

from attnlab.fastpath.numba.backward import VJPS
from attnlab.fastpath.numba.differential import differential_attention
from attnlab.fastpath.numba.hamming import hamming_attention
from attnlab.fastpath.numba.interaction import factorized_interaction
from attnlab.fastpath.numba.laser import laser_attention
from attnlab.fastpath.numba.linear import linear_attention
from attnlab.fastpath.numba.mla import mla_attention
from attnlab.fastpath.numba.simplicial import simplicial_attention
from attnlab.fastpath.numba.softmax import softmax_attention
from attnlab.fastpath.numba.tensor import tensor_attention
from attnlab.registry import FastPath, register_fast_path

FAST_PATHS = {
    "softmax": softmax_attention,
    "linear": linear_attention,
    "laser": laser_attention,
    "tensor": tensor_attention,
    "simplicial": simplicial_attention,
    "differential": differential_attention,
    "hamming": hamming_attention,
    "mla": mla_attention,
    "interaction": factorized_interaction,
}

for _form, _fn in FAST_PATHS.items():
    _vjp = VJPS.get(_form)
    register_fast_path(
        _form,
        FastPath(
            name="numba",
            fn=_fn,
            kind="numpy",
            dtypes=("float32", "float64"),
            differentiable=_vjp is not None,
            vjp=_vjp,
        ),
    )

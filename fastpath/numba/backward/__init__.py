"""Numba backward (vector-Jacobian product) kernels of the attention fast paths, one module per family.

``VJPS`` maps a form name to ``vjp(grad_out, *args, **kwargs) -> tuple of gradients``, one per array
argument of the form (in the order of its ``array_args``), each shaped and typed like that argument.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from attnlab.fastpath.numba.backward.differential import differential_vjp
from attnlab.fastpath.numba.backward.hamming import hamming_vjp
from attnlab.fastpath.numba.backward.interaction import interaction_vjp
from attnlab.fastpath.numba.backward.laser import laser_vjp
from attnlab.fastpath.numba.backward.linear import linear_vjp
from attnlab.fastpath.numba.backward.mla import mla_vjp
from attnlab.fastpath.numba.backward.simplicial import simplicial_vjp
from attnlab.fastpath.numba.backward.softmax import softmax_vjp
from attnlab.fastpath.numba.backward.tensor import tensor_vjp

VJPS: dict[str, Callable[..., Any]] = {
    "softmax": softmax_vjp,
    "laser": laser_vjp,
    "differential": differential_vjp,
    "hamming": hamming_vjp,
    "linear": linear_vjp,
    "interaction": interaction_vjp,
    "tensor": tensor_vjp,
    "simplicial": simplicial_vjp,
    "mla": mla_vjp,
}

__all__ = [
    "VJPS",
    "differential_vjp",
    "hamming_vjp",
    "interaction_vjp",
    "laser_vjp",
    "linear_vjp",
    "mla_vjp",
    "simplicial_vjp",
    "softmax_vjp",
    "tensor_vjp",
]

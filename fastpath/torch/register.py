"""Register the torch fast paths and the composed-torch references on the operator registry.

Imported lazily by :mod:`attnlab.registry` (``FAST_PATH_MODULES``). Every form gets
``FastPath(name="torch", kind="torch", dtypes=(float32, float64, bfloat16), differentiable=True)``
with a ``prepare`` hook that turns a NumPy sample into tensors of the requested dtype and device, and
its composed-torch version as the float64 autograd reference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from attnlab.fastpath.torch import composed
from attnlab.fastpath.torch.differential import differential_attention
from attnlab.fastpath.torch.hamming import hamming_attention
from attnlab.fastpath.torch.interaction import factorized_interaction
from attnlab.fastpath.torch.laser import laser_attention
from attnlab.fastpath.torch.linear import linear_attention
from attnlab.fastpath.torch.mla import mla_attention
from attnlab.fastpath.torch.simplicial import simplicial_attention
from attnlab.fastpath.torch.softmax import softmax_attention
from attnlab.fastpath.torch.tensor import tensor_attention
from attnlab.fastpath.torch.testing import to_torch_sample
from attnlab.registry import FastPath, register_fast_path, register_torch_reference

DTYPES = ("float32", "float64", "bfloat16")

#: form -> (fast path, composed-torch reference)
TORCH_PATHS: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "softmax": (softmax_attention, composed.composed_softmax),
    "linear": (linear_attention, composed.composed_linear),
    "laser": (laser_attention, composed.composed_laser),
    "tensor": (tensor_attention, composed.composed_tensor),
    "simplicial": (simplicial_attention, composed.composed_simplicial),
    "differential": (differential_attention, composed.composed_differential),
    "hamming": (hamming_attention, composed.composed_hamming),
    "mla": (mla_attention, composed.composed_mla),
    "interaction": (factorized_interaction, composed.composed_interaction),
}


def register() -> None:
    for form, (fast, reference) in TORCH_PATHS.items():
        register_fast_path(
            form,
            FastPath(
                name="torch",
                fn=fast,
                kind="torch",
                dtypes=DTYPES,
                differentiable=True,
                prepare=to_torch_sample,
            ),
        )
        register_torch_reference(form, reference)


register()

"""Exact float64 NumPy reference operators, one module per attention family.

Arrays are laid out ``(..., n, d)`` (SDPA layout); options are keyword-only. Every operator
validates its inputs and raises ``TypeError``/``ValueError`` naming the argument at fault.
"""

from attnlab.reference.differential import differential_attention
from attnlab.reference.hamming import hamming_attention, hamming_scores, sign_code
from attnlab.reference.interaction import factorized_interaction, interaction_matrices, softmax_coefficients
from attnlab.reference.laser import laser_attention, laser_attention_global_shift
from attnlab.reference.linear import (
    linear_attention,
    linear_attention_chunked,
    linear_attention_quadratic,
    linear_attention_recurrent,
)
from attnlab.reference.mla import MLAWeights, mla_attention
from attnlab.reference.softmax import (
    attention_scores,
    attention_weights,
    merge_partial_attention,
    softmax_attention,
    softmax_attention_lse,
)
from attnlab.reference.tensor import khatri_rao, simplicial_attention, tensor_attention
from attnlab.reference.tensor_poly import tensor_attention_poly, tensor_poly_factors

__all__ = [
    "MLAWeights",
    "attention_scores",
    "attention_weights",
    "differential_attention",
    "factorized_interaction",
    "hamming_attention",
    "hamming_scores",
    "interaction_matrices",
    "khatri_rao",
    "laser_attention",
    "laser_attention_global_shift",
    "linear_attention",
    "linear_attention_chunked",
    "linear_attention_quadratic",
    "linear_attention_recurrent",
    "merge_partial_attention",
    "mla_attention",
    "sign_code",
    "simplicial_attention",
    "softmax_attention",
    "softmax_attention_lse",
    "softmax_coefficients",
    "tensor_attention",
    "tensor_attention_poly",
    "tensor_poly_factors",
]

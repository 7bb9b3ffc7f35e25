"""Declaration of the multi-head factorized interaction operator y_i = Σ_j Σ_h α^h_ij U_h x_j."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

import attnlab.reference.interaction as module
from attnlab.core import BadInput, BenchCase, FastPath, Form, Invariant, Mutant, SampleInput, Shape
from attnlab.forms import _shared as sh
from attnlab.papers import Source, paper
from attnlab.reference.interaction import factorized_interaction

OP = "factorized_interaction"


def brute_force(x: Any, alpha: Any, u: Any = None, *, w_v: Any = None, w_o: Any = None) -> np.ndarray:
    """``y_i = Σ_j Σ_h α^h_ij U_h x_j`` with column vectors, one entry at a time."""
    x, alpha = np.asarray(x, dtype=np.float64), np.asarray(alpha, dtype=np.float64)
    if u is None:
        u = np.swapaxes(np.asarray(w_v) @ np.asarray(w_o), -1, -2)
    n, dim = x.shape[-2:]

    def one(xs: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
        y = np.zeros((n, dim))
        for i in range(n):
            for j in range(n):
                for h in range(u.shape[0]):
                    for a in range(dim):
                        y[i, a] += coeffs[h, i, j] * sum(u[h, a, b] * xs[j, b] for b in range(dim))
        return y

    return np.stack([one(x[b], alpha[b]) for b in range(x.shape[0])])


def oracle(x: Any, alpha: Any, u: Any = None, *, w_v: Any = None, w_o: Any = None) -> Any:
    """``Y = Σ_h (α_h X) U_hᵀ`` (or ``Σ_h α_h X W_V^h W_O^h``) in torch."""
    import torch

    from attnlab.forms import _torch as T

    x = T.tensor(x)
    coeffs = T.tensor(alpha, x)
    mixed = coeffs @ x[..., None, :, :]
    if u is not None:
        return torch.einsum("...hnd,hed->...ne", mixed, T.tensor(u, x))
    return (mixed @ T.tensor(w_v, x) @ T.tensor(w_o, x)).sum(dim=-3)


def adapt(shape: Shape) -> Shape | None:
    return replace(
        shape,
        n=min(shape.n, 8),
        m=None,
        d=max(2, min(shape.d, 6)),
        kv_heads=shape.heads,
        causal=False,
        masked=False,
        values="normal",
    )


def sample(seed: int, shape: Shape) -> SampleInput:
    rng = np.random.default_rng(seed)
    dim = max(2, shape.d)
    x = rng.standard_normal((shape.batch, shape.n, dim))
    alpha = rng.standard_normal((shape.batch, shape.heads, shape.n, shape.n))
    if shape.option_dict.get("low_rank"):
        w_v = rng.standard_normal((shape.heads, dim, 2))
        w_o = rng.standard_normal((shape.heads, 2, dim)) / np.sqrt(dim)
        return SampleInput((x, alpha), {"w_v": w_v, "w_o": w_o}, shape.label())
    u = rng.standard_normal((shape.heads, dim, dim)) / np.sqrt(dim)
    return SampleInput((x, alpha, u), {}, shape.label())


SHAPES = st.builds(
    Shape,
    batch=st.integers(1, 2),
    heads=st.integers(1, 4),
    n=st.integers(1, 8),
    d=st.integers(2, 6),
    options=st.sampled_from([(), (("low_rank", True),)]),
)


def _dense(sample: SampleInput) -> bool:
    return len(sample.args) == 3


def _is_mha(ops: Any, sample: SampleInput) -> None:
    x = sample.args[0]
    heads, dim = sample.args[1].shape[-3], x.shape[-1]
    rng = np.random.default_rng(8)
    w_q, w_k = rng.standard_normal((2, heads, dim, 3))
    w_v, w_o = rng.standard_normal((heads, dim, 2)), rng.standard_normal((heads, 2, dim))
    alpha = ops.softmax_coefficients(x, w_q, w_k, causal=True)
    got = ops.factorized_interaction(x, alpha, w_v=w_v, w_o=w_o)
    q, k, v = (np.einsum("bnd,hdk->bhnk", x, w) for w in (w_q, w_k, w_v))
    mha = np.einsum("bhnv,hvd->bnd", sh.attention_loop(q, k, v, causal=True), w_o)
    sh.close("UFF with softmax coefficients vs multi-head attention", got, mha)


def _rank(ops: Any, sample: SampleInput) -> None:
    x, alpha, u = sample.args
    mats = ops.interaction_matrices(alpha[0], u)
    n, dim = x.shape[-2], x.shape[-1]
    rank = np.linalg.matrix_rank(mats.reshape(n * n, dim * dim), tol=1e-9)
    assert rank <= u.shape[0], f"interaction rank {rank} > H = {u.shape[0]}"


def _low_rank(ops: Any, sample: SampleInput) -> None:
    x, alpha = sample.args[:2]
    heads, dim = alpha.shape[-3], x.shape[-1]
    rng = np.random.default_rng(9)
    w_v, w_o = rng.standard_normal((heads, dim, 2)), rng.standard_normal((heads, 2, dim))
    dense = np.swapaxes(w_v @ w_o, -1, -2)
    sh.close(
        "low-rank (W_V, W_O) vs dense U = (W_V W_O)^T",
        ops.factorized_interaction(x, alpha, w_v=w_v, w_o=w_o),
        ops.factorized_interaction(x, alpha, dense),
    )


def _linear_in_x(ops: Any, sample: SampleInput) -> None:
    x, *rest = sample.args
    other = np.random.default_rng(10).standard_normal(x.shape)
    f = ops.factorized_interaction
    sh.close(
        "Y(2x + x') vs 2Y(x) + Y(x')",
        f(2 * x + other, *rest, **sample.kwargs),
        2 * f(x, *rest, **sample.kwargs) + f(other, *rest, **sample.kwargs),
    )


def _transposed_dense(original: Any) -> Any:
    def mutated(x: Any, alpha: Any, u: Any = None, **kwargs: Any) -> Any:
        return original(x, alpha, None if u is None else np.swapaxes(np.asarray(u), -1, -2), **kwargs)

    return mutated


def _head_mean(original: Any) -> Any:
    def mutated(x: Any, alpha: Any, u: Any = None, **kwargs: Any) -> Any:
        heads = np.shape(alpha)[-3]
        return original(x, alpha, u, **kwargs) / heads if heads > 1 else original(x, alpha, u, **kwargs) * 1.5

    return mutated


def _extra_identity(original: Any) -> Any:
    def mutated(alpha: np.ndarray, u: np.ndarray) -> np.ndarray:
        mats = original(alpha, u)
        return mats + np.eye(u.shape[-1]) * np.random.default_rng(0).standard_normal(mats.shape[:-2])[..., None, None]

    return mutated


def _quadratic_term(original: Any) -> Any:
    def mutated(x: Any, *args: Any, **kwargs: Any) -> Any:
        return original(x, *args, **kwargs) + 1e-3 * np.asarray(x) ** 2

    return mutated


MUTANTS = (
    Mutant(
        "transposed_dense_maps",
        "the dense maps enter as U_h instead of U_hᵀ (column/row convention mixed)",
        {OP: _transposed_dense},
    ),
    Mutant("head_mean", "heads averaged instead of summed", {OP: _head_mean}),
    Mutant(
        "pair_maps_gain_identity",
        "each W_ij gains an input-dependent multiple of the identity",
        {"interaction_matrices": _extra_identity},
    ),
    Mutant("quadratic_term", "the output gains a term quadratic in X", {OP: _quadratic_term}),
    sh.output_nudged(OP),
)

INVARIANTS = (
    Invariant(
        "softmax_is_mha",
        "softmax coefficients with U_h = (W_V^h W_O^h)ᵀ give multi-head attention",
        _is_mha,
        ("head_mean",),
    ),
    Invariant(
        "rank_at_most_heads",
        "the n² x D² matrix of stacked vec(W_ij) has rank <= H",
        _rank,
        ("pair_maps_gain_identity",),
        lambda s: _dense(s) and s.args[1].shape[-3] < s.args[0].shape[-1] ** 2,
    ),
    Invariant(
        "low_rank_equals_dense", "(W_V, W_O) maps equal the dense U = (W_V W_O)ᵀ", _low_rank, ("transposed_dense_maps",)
    ),
    Invariant("linear_in_x", "for fixed coefficients the operator is linear in X", _linear_in_x, ("quadratic_term",)),
    sh.matches_brute_force(OP, brute_force, mutants=("output_nudged", "transposed_dense_maps", "head_mean"), max_n=6),
)


def _bad_inputs() -> list[BadInput]:
    base = sample(0, Shape(heads=2, n=4, d=3))
    return [
        *sh.bad_arrays(("x", "alpha", "u"), base),
        BadInput(
            "alpha-wrong-length",
            (np.ones((1, 4, 3)), np.ones((1, 2, 5, 5)), np.ones((2, 3, 3))),
            {},
            ValueError,
            r"\balpha\b",
        ),
        BadInput(
            "alpha-heads",
            (np.ones((1, 4, 3)), np.ones((1, 3, 4, 4)), np.ones((2, 3, 3))),
            {},
            ValueError,
            r"\balpha\b.*heads",
        ),
        BadInput(
            "u-wrong-width", (np.ones((1, 4, 3)), np.ones((1, 2, 4, 4)), np.ones((2, 4, 4))), {}, ValueError, r"\bu\b"
        ),
        BadInput("no-value-maps", (np.ones((1, 4, 3)), np.ones((1, 2, 4, 4))), {}, ValueError, r"\bu\b"),
        BadInput(
            "w-o-shape",
            (np.ones((1, 4, 3)), np.ones((1, 2, 4, 4))),
            {"w_v": np.ones((2, 3, 2)), "w_o": np.ones((2, 3, 3))},
            ValueError,
            r"\bw_o\b",
        ),
        # H·n·max|α|·max|x|·D·max|U| = 2·4·1·1e306·3·1 = 2.4e307 reaches float64's max / 16
        sh.too_large("outputs-overflow-u", base, {0: 1e306, 1: 1.0, 2: 1.0}, r"\bx\b.*can reach 2.4e\+307"),
        # with factored maps D·d_v·max|W_v|·max|W_o| replaces D·max|U|: 2·4·1·1e306·3·2·1·1 = 4.8e307
        BadInput(
            "outputs-overflow-factored",
            (np.full((1, 4, 3), 1e306), np.full((1, 2, 4, 4), 0.5)),
            {"w_v": np.full((2, 3, 2), 2.0), "w_o": np.full((2, 2, 3), 3.0)},
            ValueError,
            r"\bx\b.*can reach 1.44e\+308",
        ),
        BadInput(
            "u-and-factored-maps",
            (np.ones((1, 4, 3)), np.ones((1, 2, 4, 4)), np.ones((2, 3, 3))),
            {"w_v": np.ones((2, 3, 2)), "w_o": np.ones((2, 2, 3))},
            ValueError,
            r"\bu\b.*not both",
        ),
        BadInput(
            "u-and-w_v",
            (np.ones((1, 4, 3)), np.ones((1, 2, 4, 4)), np.ones((2, 3, 3))),
            {"w_v": np.ones((2, 3, 2))},
            ValueError,
            r"\bu\b.*not both",
        ),
        BadInput(
            "w_v-without-w_o",
            (np.ones((1, 4, 3)), np.ones((1, 2, 4, 4))),
            {"w_v": np.ones((2, 3, 2))},
            ValueError,
            r"\bw_v\b",
        ),
        *(
            BadInput(
                f"{name}-{label}",
                (np.ones((1, 4, 3)), np.ones((1, 2, 4, 4))),
                {"w_v": np.ones((2, 3, 2)), "w_o": np.ones((2, 2, 3)), name: value},
                error,
                rf"\b{name}\b",
            )
            for name, label, value, error in (
                ("w_v", "2d", np.ones((3, 2)), ValueError),
                ("w_o", "2d", np.ones((2, 3)), ValueError),
                ("w_v", "string", "maps", TypeError),
                ("w_o", "string", "maps", TypeError),
                ("w_v", "wrong-width", np.ones((2, 4, 2)), ValueError),
            )
        ),
        BadInput(
            "x-alpha-batch-mismatch",
            (np.ones((2, 4, 3)), np.ones((3, 2, 4, 4)), np.ones((2, 3, 3))),
            {},
            ValueError,
            r"\bx/alpha\b",
        ),
    ]


def _flops(s: SampleInput) -> float:
    x, alpha = s.args[:2]
    b, h, n, dim = x.shape[0], alpha.shape[-3], x.shape[-2], x.shape[-1]
    return 2.0 * b * h * n * n * dim + 2.0 * b * n * h * dim * dim


FORM = Form(
    name="interaction",
    order=5,
    title="Multi-head factorized interaction operator",
    equation=r"y_i = \sum_j W_{ij}(X)\, x_j,\quad W_{ij}(X) = \sum_{h=1}^{H} \alpha^h_{ij}(X)\, U_h",
    reference=factorized_interaction,
    module=module,
    brute_force=brute_force,
    oracle=oracle,
    source=Source(paper("ghodsi2025heads"), "factorized class W_ij(X) = Σ_h α^h_ij(X) U_h", abstract_level=True),
    status="exact",
    note=(
        "Coefficients may be any real values (not necessarily softmax-normalised); "
        "only (x, alpha, u) are differentiated."
    ),
    array_args=("x", "alpha", "u"),
    row_args=(),
    batch_args=("x", "alpha"),
    sample=sample,
    adapt=adapt,
    shapes=SHAPES,
    extra_shapes=(Shape(batch=1, heads=3, kv_heads=3, n=5, d=4, options=(("low_rank", True),)),),
    invariants=INVARIANTS,
    mutants=MUTANTS,
    bad_inputs=_bad_inputs,
    flops=_flops,
    flop_convention="2·B·H·n²·D for the coefficient products plus 2·B·n·H·D² for the value maps",
    bench=(
        BenchCase(Shape(batch=1, heads=2, kv_heads=2, n=8, d=4), ("tiny",)),
        BenchCase(Shape(batch=1, heads=8, kv_heads=8, n=256, d=64), ("quick",)),
        BenchCase(Shape(batch=1, heads=8, kv_heads=8, n=1024, d=64), ("full",)),
    ),
    fast_paths=(
        FastPath(
            "numba",
            "attnlab.fastpath.numba.interaction:factorized_interaction",
            "numpy",
            vjp="attnlab.fastpath.numba.backward.interaction:interaction_vjp",
            differentiable=True,
            supports=_dense,
        ),
        FastPath(
            "torch",
            "attnlab.fastpath.torch.interaction:factorized_interaction",
            "torch",
            dtypes=("float32", "float64", "bfloat16"),
            devices=("cpu", "cuda"),
            differentiable=True,
        ),
    ),
)

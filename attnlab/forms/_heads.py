"""Helpers shared by the head-structured form declarations (MoH, SQA, DIFF V2, GDA).

Written from the definitions, like :mod:`attnlab.forms._shared`, and kept apart from the references:
the GQA head expansion here is ``np.repeat`` on the head axis, the bad-input builders keep every
positional argument of calls that take more than ``(q, k, v)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from attnlab.core import BadInput, BenchCase, FastPath, Invariant, Mutant, SampleInput, Shape
from attnlab.forms import _shared as sh


def with_arg(sample: SampleInput, index: int, value: Any) -> tuple[Any, ...]:
    """The sample's positional arguments with argument ``index`` replaced by ``value``."""
    args = list(sample.args)
    args[index] = value
    return tuple(args)


def bad_arg(
    label: str, sample: SampleInput, index: int, value: Any, error: type[Exception], match: str, **kwargs: Any
) -> BadInput:
    """A bad input that replaces one positional argument (and optionally some keyword options)."""
    return BadInput(label, with_arg(sample, index, value), {**sample.kwargs, **kwargs}, error, match)


def bad_option(label: str, sample: SampleInput, error: type[Exception], match: str, **kwargs: Any) -> BadInput:
    return BadInput(label, sample.args, {**sample.kwargs, **kwargs}, error, match)


def expand_heads(x: np.ndarray, heads: int) -> np.ndarray:
    """KV heads repeated contiguously to ``heads`` heads on axis −3 (head ``h`` reads KV head ``h // G``)."""
    return np.repeat(x, heads // x.shape[-3], axis=-3) if x.shape[-3] != heads else np.array(x)


def qkv_shape_cases(sample: SampleInput, names: Sequence[str] = ("q", "k", "v")) -> list[BadInput]:
    """Head-dim and length mismatches of the ``(q, k, v)`` leading arguments, other arguments kept."""
    k, v = sample.args[1:3]
    kn, vn = names[1:3]
    narrower = k[..., :-1] if k.shape[-1] > 1 else np.concatenate([k, k], -1)
    return [
        bad_arg(f"{kn}-head-dim", sample, 1, narrower, ValueError, rf"\b{kn}\b.*d_k"),
        bad_arg(f"{kn}{vn}-length-mismatch", sample, 2, np.concatenate([v, v], -2), ValueError, rf"\b{kn}\b.*\b{vn}\b"),
    ]


def layout_sample(seed: int, shape: Shape, options: dict[str, Any]) -> SampleInput:
    """``(q, k, v)`` with exactly ``shape.kv_heads`` KV heads (for layouts where ``H_kv`` need not divide
    ``H``), the shape's value distribution, ``causal``, an optional mask and ``options``."""
    rng = np.random.default_rng(seed)
    q = sh.qk_values(rng, (shape.batch, shape.heads, shape.n, shape.d), shape.values)
    k = sh.qk_values(rng, (shape.batch, shape.kv_heads, shape.keys, shape.d), shape.values)
    if shape.values in ("tied", "near_tied"):
        q[..., ::3, :] = 0.0
    v = sh.value_values(rng, (shape.batch, shape.kv_heads, shape.keys, shape.d_v), shape.values)
    kwargs: dict[str, Any] = {"causal": shape.causal, **options}
    if shape.masked:
        kwargs["mask"] = sh.sample_mask(rng, shape)
    return SampleInput((q, k, v), kwargs, shape.label())


def attention_mutants(
    op: str,
    *,
    key_args: Sequence[int] = (1, 2),
    gqa_args: Sequence[int] | None = (1, 2),
    gqa_q_arg: int = 0,
    scale: bool = True,
) -> tuple[Mutant, ...]:
    """The generic mutants of an operator whose first argument carries the queries: top-left and leaky
    causal, the interleaved GQA map (``gqa_args``: the KV-head arguments, read against the query heads of
    argument ``gqa_q_arg``; None without GQA), a dropped last key, a wrong default scale (``scale``), an
    ignored mask and a nudged output row."""
    mutants = [sh.top_left_causal(op, key_arg=key_args[0]), sh.leaky_causal(op, key_arg=key_args[0])]
    if gqa_args is not None:
        mutants.append(sh.interleaved_gqa(op, gqa_args, q_arg=gqa_q_arg))
    mutants.append(sh.drops_last_key(op, key_args))
    if scale:
        mutants.append(sh.wrong_default_scale(op))
    return (*mutants, sh.ignores_mask(op), sh.output_nudged(op))


def attention_invariants(
    op: str,
    brute: Callable[..., np.ndarray],
    *,
    query_args: Sequence[int],
    key_args: Sequence[int],
    brute_mutants: Sequence[str],
    gqa_args: Sequence[int] | None = None,
    q_arg: int = 0,
) -> tuple[Invariant, ...]:
    """The generic invariants claiming the mutants of :func:`attention_mutants`: causal prefix, key and
    query permutations, GQA = MHA (``gqa_args``) and the brute-force loop (with ``brute_mutants`` too)."""
    invariants = [
        sh.causal_prefix(op, query_args, key_args, mutants=("leaky_causal",)),
        sh.key_permutation(op, key_args, mutants=("drops_last_key",)),
        sh.query_permutation(op, query_args, key_arg=key_args[0], mutants=("output_nudged",)),
    ]
    if gqa_args is not None:
        invariants.append(sh.gqa_equals_mha(op, gqa_args, mutants=("interleaved_gqa",), q_arg=q_arg))
    brute_force = sh.matches_brute_force(
        op, brute, mutants=("top_left_causal", "ignores_mask", "output_nudged", *brute_mutants)
    )
    return (*invariants, brute_force)


def bench_cases(
    options: dict[str, Any], *rows: tuple[tuple[str, ...], int, int, int, int, int, bool]
) -> tuple[BenchCase, ...]:
    """Benchmark cases ``(modes, batch, heads, kv_heads, n, d, causal)`` with ``d_v = d`` and the same options."""
    return tuple(
        BenchCase(Shape(batch=b, heads=h, kv_heads=kv, n=n, d=d, d_v=d, causal=causal).with_options(**options), modes)
        for modes, b, h, kv, n, d, causal in rows
    )


def torch_path(fn: str) -> FastPath:
    """The autograd torch path ``fn`` (``"module:attr"``) on CPU and CUDA in every torch float dtype,
    held to the default tolerance rule."""
    return FastPath(
        "torch",
        fn,
        "torch",
        dtypes=("float32", "float64", "bfloat16", "float16"),
        devices=("cpu", "cuda"),
        differentiable=True,
    )


def query_head_flops(sample: SampleInput, *, value_width: int = 1) -> float:
    """FlashAttention's count for the query heads of ``(q, k, v, ...)``: ``4·(B·H)·n·m·(d_k + w·d_v)/2``,
    halved when causal; ``value_width`` ``w`` multiplies the value dim (GDA attends ``[V1 ‖ V2]``). Counted
    over the query heads, so GQA samples (fewer KV heads) are counted by the work done."""
    q, k, v = sample.args[:3]
    d = (q.shape[-1] + value_width * v.shape[-1]) / 2
    return 4.0 * math.prod(q.shape[:-2]) * q.shape[-2] * k.shape[-2] * d * (0.5 if sample.kwargs.get("causal") else 1.0)

"""Which samples each check runs on, derived from the declarations.

* :func:`fixed_samples` — the form's adapted standard shapes plus its own extras: the samples of
  ``attnlab verify``, of the invariant tests and the start of ``attnlab check``;
* :func:`parity_samples` — those plus the tile-crossing lengths of a fast path (just below, at and
  above each declared tile, and past twice the largest), for forward parity;
* :func:`gradient_samples` — small shapes for gradient parity;
* :func:`kernel_samples` — what ``attnlab check`` runs on a user's kernel: the fixed samples and lengths
  around the tile sizes kernels commonly use (64, 128, 256).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from attnlab.core import FastPath, Form, Invariant, SampleInput, Shape
from attnlab.forms._shared import STANDARD_SHAPES

GRADIENT_SHAPES: tuple[Shape, ...] = (
    Shape(batch=1, heads=2, kv_heads=1, n=7, d=4, d_v=3, causal=True),
    Shape(batch=1, heads=2, kv_heads=2, n=9, m=6, d=5, d_v=2, masked=True),
    Shape(batch=1, heads=4, kv_heads=2, n=5, m=8, d=3, d_v=4, causal=True, values="large"),
)

#: Tile sizes a user's kernel is likely to use; ``attnlab check`` crosses each.
COMMON_TILES: tuple[int, ...] = (64, 128, 256)


def tile_shapes(tiles: Iterable[int]) -> list[Shape]:
    """Shapes whose lengths sit just below, at and just above each tile, plus one past twice the largest."""
    tiles = sorted(set(tiles))
    if not tiles:
        return []
    shapes = []
    for t in tiles:
        shapes += [
            Shape(batch=1, heads=2, kv_heads=1, n=t - 1, m=t + 1, d=16, d_v=8, causal=True),
            Shape(batch=1, heads=2, kv_heads=2, n=t, d=16, d_v=8, masked=True),
            Shape(batch=1, heads=4, kv_heads=2, n=t + 1, m=t - 1, d=8, d_v=8),
        ]
    big = 2 * tiles[-1] + 8
    shapes.append(Shape(batch=1, heads=2, kv_heads=1, n=big, d=16, d_v=8, causal=True))
    return shapes


def _adapt(form: Form, shapes: Sequence[Shape]) -> list[Shape]:
    adapted = [s for s in (form.adapt(shape) for shape in shapes) if s is not None]
    return list(dict.fromkeys(adapted))


def _build(form: Form, shapes: Sequence[Shape], seed: int) -> list[SampleInput]:
    return [form.sample(seed + i, shape) for i, shape in enumerate(shapes)]


def fixed_shapes(form: Form) -> list[Shape]:
    return list(dict.fromkeys([*_adapt(form, STANDARD_SHAPES), *form.extra_shapes]))


def fixed_samples(form: Form, seed: int = 0) -> list[SampleInput]:
    return _build(form, fixed_shapes(form), seed)


def parity_samples(form: Form, path: FastPath, seed: int = 11) -> list[SampleInput]:
    shapes = [*fixed_shapes(form), *_adapt(form, tile_shapes(path.tiles))]
    samples = _build(form, list(dict.fromkeys(shapes)), seed)
    return [s for s in samples if path.supports(s)]


def gradient_samples(form: Form, path: FastPath | None = None, seed: int = 12) -> list[SampleInput]:
    samples = _build(form, _adapt(form, GRADIENT_SHAPES) or fixed_shapes(form)[:2], seed)
    return [s for s in samples if path is None or path.supports(s)]


def kernel_samples(form: Form, seed: int = 21) -> list[SampleInput]:
    shapes = [*fixed_shapes(form), *_adapt(form, tile_shapes(COMMON_TILES))]
    return _build(form, list(dict.fromkeys(shapes)), seed)


def applicable(invariant: Invariant, samples: Iterable[SampleInput]) -> list[SampleInput]:
    """The samples an invariant speaks about (the others are filtered out, and counted by the caller)."""
    return [s for s in samples if invariant.applies(s)]


def qkv_sample(case: tuple, seed: int = 0, **options: object) -> SampleInput:
    """``(q, k, v)`` for a case ``(batch, heads, kv_heads, n, m, d, d_v, causal, masked)``; a masked case
    empties query row ``n // 2``. Extra keyword ``options`` are passed to the operator."""
    import numpy as np

    batch, heads, kv_heads, n, m, d, d_v, causal, masked = case
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((batch, heads, n, d))
    k = rng.standard_normal((batch, kv_heads, m, d))
    v = rng.standard_normal((batch, kv_heads, m, d_v))
    kwargs: dict[str, object] = {"causal": causal, **options}
    if masked:
        mask = rng.random((batch, 1, n, m)) > 0.3
        mask[..., n // 2, :] = False
        kwargs["mask"] = mask
    return SampleInput((q, k, v), kwargs, f"B{batch}-H{heads}-Hkv{kv_heads}-n{n}-m{m}-d{d}-dv{d_v}")


#: ``(q, k, v)`` cases of the per-form VJP tests: length 1, odd lengths, GQA, m != n, masks with an empty
#: row, causal rows before the first key.
QKV_CASES: tuple[tuple[str, tuple], ...] = (
    ("n1", (1, 2, 2, 1, 1, 8, 4, False, False)),
    ("n63-causal-gqa", (1, 2, 1, 63, 63, 16, 8, True, False)),
    ("n100-mask-empty-row-gqa", (2, 4, 2, 100, 100, 8, 8, False, True)),
    ("n64-m80-causal", (1, 2, 2, 64, 80, 32, 16, True, False)),
    ("n128", (1, 1, 1, 128, 128, 64, 8, False, False)),
    ("n100-m70-causal-mask-rows-before-first-key", (1, 2, 2, 100, 70, 8, 4, True, True)),
)

"""Hierarchical Self-Attention (HSA; Amizadeh et al. 2025): softmax attention projected onto a tree, a reading.

Source: Saeed Amizadeh, Sara Abdali, Yinheng Li, Kazuhito Koishida, "Hierarchical Self-Attention:
Generalizing Neural Attention Mechanics to Multi-Scale Problems", NeurIPS 2025, arXiv 2509.15448
(abstract): attention for nested signals derived from entropy minimisation, "the closest to the
standard Softmax attention while incorporating the inductive biases" of the hierarchy, computed by
dynamic programming.

Reading implemented here (``status="reading"``; the paper body was not read). A tree over the ``m``
tokens partitions, for each query token ``i``, the keys into blocks: ``{i}`` itself and, at every
ancestor of ``i``, one block per child subtree not containing ``i`` (a leaf child is a singleton). The
weights ``P_i`` are constrained to be uniform within each block; the projection of the softmax row
``a_i = softmax_j(σ q_i·k_j)`` onto that set is, for the two KL directions,

    forward  (argmin_P KL(P ‖ a_i)):  P_i(B) ∝ |B| exp(mean_{j∈B} σ q_i·k_j) = |B| exp(σ q_i·k̄_B),
    reverse  (argmin_P KL(a_i ‖ P)):  P_i(B) = Σ_{j∈B} a_ij,

spread uniformly inside each block, ``P_ij = P_i(B(i, j)) / |B|``; the output is ``o_i = Σ_j P_ij v_j =
Σ_B P_i(B) v̄_B``. Because scores are linear in the keys, the forward projection needs only block-mean
keys and values, ``O(branching · depth)`` blocks per query: the bottom-up dynamic programme the
abstract mentions. A flat tree (every token a child of the root) is softmax attention.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from attnlab.reference._core import masked_softmax
from attnlab.reference.softmax import _prepare_qk, _prepare_scores
from attnlab.validation import overflow_checked

PROJECTIONS = ("forward_kl", "reverse_kl")

Tree = Any  # an int (a token) or a non-empty sequence of subtrees


def tree_leaves(tree: Tree) -> list[int]:
    """The tokens of ``tree`` in depth-first order."""
    if isinstance(tree, (int, np.integer)) and not isinstance(tree, (bool, np.bool_)):
        return [int(tree)]
    return [leaf for child in tree for leaf in tree_leaves(child)]


#: Deepest nesting a tree may have: far beyond any chunk hierarchy, and well inside Python's recursion limit
#: for the recursive walks over the tree (a list that contains itself is refused by name, not by a crash).
MAX_TREE_DEPTH = 200


def check_tree(tree: Any, m: int, name: str = "tree") -> Tree:
    """Validate that ``tree`` is nested sequences whose leaves are the tokens ``0 … m − 1``, each once."""

    def walk(node: Any, depth: int) -> None:
        if depth > MAX_TREE_DEPTH:
            raise ValueError(f"{name}: nested more than {MAX_TREE_DEPTH} levels deep (or it contains itself)")
        if isinstance(node, (bool, np.bool_)):
            raise TypeError(f"{name}: expected token ints or nested sequences of them, got a bool")
        if isinstance(node, (int, np.integer)):
            return
        if isinstance(node, (str, bytes)) or not isinstance(node, Sequence):
            raise TypeError(f"{name}: expected token ints or nested sequences of them, got {type(node).__name__}")
        if len(node) == 0:
            raise ValueError(f"{name}: a node has no children")
        for child in node:
            walk(child, depth + 1)

    walk(tree, 0)
    leaves = tree_leaves(tree)
    if sorted(leaves) != list(range(m)):
        raise ValueError(
            f"{name}: expected the leaves to be the tokens 0..{m - 1}, each exactly once, got {sorted(leaves)}"
        )
    return tree


def hsa_blocks(tree: Tree, m: int) -> np.ndarray:
    """``(m, m)`` int labels: ``blocks[i, j]`` names the block of key ``j`` for query ``i``; block ids of a
    row run from 0 (the query itself) upwards."""
    check_tree(tree, m)
    blocks = np.full((m, m), -1, dtype=np.int64)

    def assign(node: Tree, path: list[list[Tree]]) -> None:
        if not isinstance(node, (int, np.integer)):
            for index, child in enumerate(node):
                assign(child, [*path, [c for other, c in enumerate(node) if other != index]])
            return
        i = int(node)
        blocks[i, i] = 0
        label = 1
        for siblings in reversed(path):  # from the parent up to the root
            for sibling in siblings:
                blocks[i, tree_leaves(sibling)] = label
                label += 1

    assign(tree, [])
    return blocks


def _block_structure(tree: Tree, m: int) -> tuple[np.ndarray, np.ndarray]:
    """One-hot membership ``(m, m, n_blocks)`` and block sizes ``(m, n_blocks)`` (0 for unused ids)."""
    blocks = hsa_blocks(tree, m)
    count = int(blocks.max()) + 1
    member = (blocks[..., None] == np.arange(count)).astype(float)
    return member, member.sum(axis=1)


def block_masses(scores: np.ndarray, member: np.ndarray, sizes: np.ndarray, projection: str) -> np.ndarray:
    """``P_i(B)`` ``(..., n, n_blocks)`` from the scores ``(..., n, m)`` under ``projection``."""
    used = sizes > 0
    safe = np.where(used, sizes, 1.0)
    if projection == "forward_kl":
        mean_scores = np.einsum("...ij,ijb->...ib", scores, member) / safe
        return masked_softmax(np.log(safe) + mean_scores, np.broadcast_to(used, mean_scores.shape))
    return np.einsum("...ij,ijb->...ib", masked_softmax(scores, np.ones(scores.shape, dtype=bool)), member)


def hsa_weights(
    q: Any, k: Any, *, tree: Tree, scale: float | None = None, projection: str = "forward_kl"
) -> np.ndarray:
    """The block-uniform weights ``P`` ``(..., H, n, m)`` (rows sum to 1) of :func:`hsa_attention`."""
    if projection not in PROJECTIONS:
        raise ValueError(f"projection: expected one of {PROJECTIONS}, got {projection!r}")
    qa, ka, sigma, _ = _prepare_scores(q, k, scale=scale, causal=False, mask=None)
    n, m = qa.shape[-2], ka.shape[-2]
    if n != m:
        raise ValueError(f"q/k: hierarchical self-attention needs one token sequence, got n={n} queries and m={m} keys")
    member, sizes = (x.astype(qa.dtype) for x in _block_structure(tree, m))
    masses = block_masses(sigma * (qa @ np.swapaxes(ka, -1, -2)), member, sizes, projection)
    return np.einsum("...ib,ijb->...ij", masses / np.where(sizes > 0, sizes, 1.0), member)


@overflow_checked
def hsa_attention(
    q: Any, k: Any, v: Any, *, tree: Tree, scale: float | None = None, projection: str = "forward_kl"
) -> np.ndarray:
    """Hierarchical self-attention ``o_i = Σ_B P_i(B) v̄_B`` over the blocks of ``tree`` seen from ``i``.

    Args:
        q: ``(..., H, n, d_k)``; k: ``(..., H_kv, n, d_k)``; v: ``(..., H_kv, n, d_v)``: one token sequence
            (query head ``h`` reads KV head ``h // (H / H_kv)``).
        tree: nested sequences of token ints, each of ``0 … n − 1`` exactly once (``(0, 1, (2, 3))``:
            tokens 0 and 1 and a subtree holding 2 and 3). Shared by every batch entry and head.
        scale: σ, default ``d_k ** -0.5``.
        projection: ``"forward_kl"`` (``P(B) ∝ |B| e^{σ q·k̄_B}``, the default) or ``"reverse_kl"``
            (``P(B) = Σ_{j∈B} softmax_j``).

    Returns:
        ``(..., H, n, d_v)`` float64.
    """
    qa, ka, va, _, _ = _prepare_qk(q, k, v, scale=scale, causal=False, mask=None)
    return hsa_weights(qa, ka, tree=tree, scale=scale, projection=projection) @ va

"""Sign codes packed into machine words, and the number of differing bits between two codes.

A ±1 code of length ``b`` is stored as ``⌈b/64⌉`` uint64 words with bit ``t`` set where entry ``t`` is
``+1`` (``x >= 0``, so ``sign(0) = +1``). For two codes, ``h·h' = b − 2·popcount(w xor w')`` summed over
the words: the code distance costs one xor and one popcount per 64 entries instead of 64 multiply-adds.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_PAIRS = np.uint64(0x5555555555555555)
_NIBBLE_PAIRS = np.uint64(0x3333333333333333)
_BYTE_NIBBLES = np.uint64(0x0F0F0F0F0F0F0F0F)
_BYTE_SUM = np.uint64(0x0101010101010101)


@njit(cache=True, fastmath=False)
def set_bits(word):
    """Number of set bits of a uint64 (bits summed in pairs, nibbles, bytes; Numba has no popcount intrinsic)."""
    word = word - ((word >> np.uint64(1)) & _PAIRS)
    word = (word & _NIBBLE_PAIRS) + ((word >> np.uint64(2)) & _NIBBLE_PAIRS)
    word = (word + (word >> np.uint64(4))) & _BYTE_NIBBLES
    return (word * _BYTE_SUM) >> np.uint64(56)


def pack_sign_bits(x: np.ndarray) -> np.ndarray:
    """``(..., n, b)`` reals -> C-contiguous ``(N, n, ⌈b/64⌉)`` uint64 words, bit set where ``x >= 0``."""
    bits = np.packbits(x >= 0, axis=-1, bitorder="little")
    words = -(-x.shape[-1] // 64)
    padded = np.zeros((*bits.shape[:-1], 8 * words), dtype=np.uint8)
    padded[..., : bits.shape[-1]] = bits
    return np.ascontiguousarray(padded.reshape(-1, x.shape[-2], 8 * words)).view(np.uint64)


@njit(cache=True, fastmath=False)
def code_distance(words_a, a, i, words_b, b, j):
    """Differing bits between code ``words_a[a, i]`` and code ``words_b[b, j]``."""
    total = np.uint64(0)
    for w in range(words_a.shape[2]):
        total += set_bits(words_a[a, i, w] ^ words_b[b, j, w])
    return np.int64(total)

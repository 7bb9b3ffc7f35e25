"""Numba CPU fast paths of the core attention forms, one module per family.

Each function has the same call signature as its reference in :mod:`attnlab.reference`, keeps the
input float dtype (float32 or float64) and returns a NumPy array. :mod:`.register` attaches them to
the operator registry.
"""

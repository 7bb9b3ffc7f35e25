"""Symbolic (SymPy) derivations that the claims' checks run: closed forms, limits and bounds proved
exactly rather than sampled."""

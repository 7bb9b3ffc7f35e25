"""Registers each operator invariant as a claim of family ``operators`` (imported by the claim registry)."""

from attnlab.registry import register_invariant_claims

register_invariant_claims()

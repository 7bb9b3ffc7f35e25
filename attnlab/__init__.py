"""attnlab: exact reference operators, theory claims as executable checks, validated fast paths
and synthetic tasks for attention mechanisms."""

__version__ = "0.1.0"

"""Analysis utilities shared by the synthetic tasks."""

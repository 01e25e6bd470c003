"""Orchestration: the one engine behind every surface (a run, a stream, a batch, its frames)."""

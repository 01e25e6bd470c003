"""The run log port: every run is recorded in SQLite and, with a key, synced to PromptLayer."""

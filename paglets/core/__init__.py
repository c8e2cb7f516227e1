"""Authoring API: pure Python, no I/O."""

"""The child-process side of the runtime."""

"""Small paglets used by ``python -m paglets.demo`` and the documentation."""

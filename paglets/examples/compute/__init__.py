"""Digits of pi computed by worker paglets across the mesh (``paglets-pi-compute``)."""

"""The dataclass state codec."""

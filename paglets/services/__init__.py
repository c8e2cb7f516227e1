"""Service contracts, the service registry and resident services."""

"""Proxies, references, transfer tickets, the host client and the mesh."""

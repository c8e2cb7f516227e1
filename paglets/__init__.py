"""paglets: mobile Python agents.

Import names from their owning modules (``from paglets.runtime.host import Host``), as in paglets 2.0.
"""

__version__ = "3.0.0.dev0"

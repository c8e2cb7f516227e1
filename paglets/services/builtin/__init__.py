"""The resident services bundled with paglets (``server-info``, ``mesh-info``, ``user-info``).

The bundled ``launch.toml`` declares them; ``docs/services.md`` describes their operations. Import names
from their modules (``paglets.services.builtin.server_info`` and so on).
"""

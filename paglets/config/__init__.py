"""Host configuration files (``launch.toml``): see :mod:`paglets.config.startup`."""

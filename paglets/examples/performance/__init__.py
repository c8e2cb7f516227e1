"""A benchmark paglet cloned to every host: CPU, memory and disk (``paglets-perf-test``)."""

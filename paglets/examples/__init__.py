"""The example agents of paglets, each with its command (``docs/examples.md`` explains them):

- :mod:`paglets.examples.file_grabber`: one file carried to another host (``paglets-file-grabber``);
- :mod:`paglets.examples.compute`: digits of pi by Chudnovsky binary splitting on worker paglets across
  the mesh (``paglets-pi-compute``);
- :mod:`paglets.examples.performance`: a benchmark paglet cloned to every host (``paglets-perf-test``);
- :mod:`paglets.examples.mesh_benchmark`: a traveller timing every directed hop between hosts
  (``paglets-mesh-benchmark``);
- :mod:`paglets.examples.search`: grep and find over the hosts' files (``paglets search grep|find``);
- :mod:`paglets.examples.analysis_jobs`: a campaign of CPU-bound compute jobs whose results are
  committed to SQLite at home (``paglets-analysis-jobs``).

The agents are ordinary paglets built on :mod:`paglets.patterns`; the commands live in
:mod:`paglets.cli`. Hosts import these classes by name, so they work on any host with paglets installed.
"""

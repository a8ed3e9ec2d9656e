"""edm-bench: the benchmark harness (data, oracles, store, tasks, reports, CLI).

Data flows one way: ``bench.data`` -> denoiser -> ``bench.oracles`` ->
``bench.store`` -> tables and figures. Heavy packages (tblite, pyscf, torch) are
imported inside the factories that use them, so importing ``bench`` is cheap.
"""

__version__ = "0.1.0"

"""airspeed velocity benchmarks (``asv run``; see asv.conf.json). Not imported by the package."""

"""The datumflow performance suite (``make bench``; ``python -m benchmarks.run``).

Each ``bench_<area>.py`` module exposes ``run(ctx) -> list[dict]``; every
figure is measured side by side with a peer tool in the same run and
reported as a ratio (see ``docs/benchmarks.md``). Performance is measured
here and only here, never in the test suite.
"""

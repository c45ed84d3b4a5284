"""What measures the product, apart from it: `python -m cnnexp.bench` (docs/benchmarks.md)."""

from cnnexp.bench.harness import main  # noqa: E402  (`python -m cnnexp.bench`, and its --help)

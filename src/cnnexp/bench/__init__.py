"""What measures the product, apart from it: `python -m cnnexp.bench` (docs/performance.md). Nothing
in the product imports it. `harness` reads the options and runs the parts in order: `loops` (the
speed comparison), `startup`, `sweep_speed`, `estimate_vs_clock`, `recipes` (time to accuracy),
`ablation`; `runs` is how each runs cnnexp."""

from cnnexp.bench.harness import main  # noqa: E402  (`python -m cnnexp.bench`, and its --help)

"""Benchmarks (runnable scripts, not tests); see BENCHMARKS.md. A package only so that Ray workers can import
``bench._overhead_hook`` by name."""

"""Benchmarks (runnable scripts, not tests); see BENCHMARKS.md. A package only so that Ray workers can import
``bench._overhead_hook`` by name."""

import search  # noqa: E402,F401  (before any benchmark imports Ray: a local Ray on 127.0.0.1, telemetry off)

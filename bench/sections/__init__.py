"""One module per benchmark: its plot and its BENCHMARKS.md section (`plot`, `section`)."""

import matplotlib

# No display: every plot is written to a file (set before any section imports pyplot).
matplotlib.use("Agg")

"""Command-line programs: sweep figures and summaries, the certified frontier, the linearity
diagnostic, synthetic dataset files. Each runs as ``python3 -m tools.<name>``."""

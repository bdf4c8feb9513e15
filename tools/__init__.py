"""Command-line tools that read results written by the sweeps."""

"""Stages and steps of pipeline runs: one module per source (graphview, blueocean, wfapi), each
holding its requests beside the pure reading of its answers (base.py says what a source is), and
the chain that picks the source for each run (chain.py)."""

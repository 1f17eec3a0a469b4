"""A/B tests of prompt versions: their lifecycle (create, start, stop, decide), the readout, and
the pure statistics in ``experiments.stats`` (fixed-horizon, power, sequential, the decision)."""

"""Pure A/B statistics over sufficient statistics (dataclasses in, dataclasses out, no database):
fixed-horizon tests, power and sample size, always-valid sequential tests, the decision."""

"""Figures over calls: the notebook store and workbench, per-call and daily metrics, signals,
exploration queries, the call journal and search, call views, freshness and exact percentiles."""

"""The Parquet lake: the nightly export of calls, turns, tool calls and scores, and its tables'
schema."""

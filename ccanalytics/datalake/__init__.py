"""The Parquet lake: the nightly export of calls, turns, tool calls and scores, reading it, its retention,
and its tables' schema."""

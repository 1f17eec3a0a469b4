"""Ingestion of call logs: validation of the call processor's JSON, the bulk load's pipeline and
COPY rows, and where tool calls belong in the dialogue."""

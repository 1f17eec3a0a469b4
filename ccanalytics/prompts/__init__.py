"""Prompt versions: creating, activating and rolling back versions, the resolver the call
processor imports for each call, and the optimizer that proposes better versions."""

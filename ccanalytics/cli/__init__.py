"""The ``ccanalytics`` command: thin wrappers that parse arguments, call one library function and
print; one module per command group."""

# the command groups that live in their own modules register themselves on ``main``
from ccanalytics.cli import (  # noqa: F401
    alerts,
    auth,
    cost,
    db,
    doctor,
    lake,
    metrics,
    prompts,
    quality,
    report,
)
from ccanalytics.cli.root import main

__all__ = ["main"]

"""The job scheduler (APScheduler): a thin layer that runs ccanalytics functions on a schedule."""

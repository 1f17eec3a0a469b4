"""Running ccanalytics: the Prometheus metric catalogue and live-metrics API, the exporter, the
recurring jobs, structured logs, the installation doctor and the dashboard checks."""

"""Logs (structlog) and Prometheus metrics, each set up in one place."""

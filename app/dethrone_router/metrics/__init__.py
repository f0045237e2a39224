"""Prometheus metrics: per-request metrics, the gateway's serving metrics, and scrape-time
gauges of the running experiment."""

"""Observability adapters: Prometheus metrics (own registry, scrape-time collectors)."""

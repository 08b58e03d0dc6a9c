"""Use cases and ports. Imports only ``domain``; adapters implement the ports."""

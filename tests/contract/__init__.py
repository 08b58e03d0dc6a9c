"""Reusable port contract suites: subclass one per adapter and provide its fixture."""

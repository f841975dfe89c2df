"""Correlation metrics, protocol summaries and reports."""

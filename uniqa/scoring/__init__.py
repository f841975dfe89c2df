"""Scoring: test-time views, one encoder pass for several heads, and the scoring stage built on them."""

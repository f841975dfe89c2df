"""Cached per-view features of a frozen model (``uniqa features``): the adapters' training input."""

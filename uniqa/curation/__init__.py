"""Curation: turn a scoring run into a training set (keep rows by a rule over their scores, per-group quantile
thresholds, kept / rejected manifests, histograms)."""

"""Manifests: one row per image, from official dataset files, folders, CSVs or S3 prefixes."""

"""Transitional: the helpers moved (uniqa.tables, uniqa.sink, uniqa.runtime); this module re-exports them."""

from uniqa.runtime import drain_user_errors, user_error_in
from uniqa.sink import check_run_identity
from uniqa.tables import dataset_schema, remove_parts

__all__ = ["check_run_identity", "dataset_schema", "drain_user_errors", "remove_parts", "user_error_in"]

"""Models: open_clip architectures and our JSON configs, checkpoints in every format we read and write."""

from uniqa.models.checkpoints import (
    Checkpoint,
    export_openai_state_dict,
    file_checksum,
    load_state_dict_into,
    read_checkpoint,
    save_checkpoint,
    save_openai_state_dict,
    state_dict_mismatches,
)
from uniqa.models.factory import OUR_MODELS, PRECISIONS, ModelInfo, create_model, model_info, resolve_model_name

__all__ = [
    "OUR_MODELS",
    "PRECISIONS",
    "Checkpoint",
    "ModelInfo",
    "create_model",
    "export_openai_state_dict",
    "file_checksum",
    "load_state_dict_into",
    "model_info",
    "read_checkpoint",
    "resolve_model_name",
    "save_checkpoint",
    "save_openai_state_dict",
    "state_dict_mismatches",
]

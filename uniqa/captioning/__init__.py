"""Captioning: versioned prompts (:mod:`.instructions`), captioner backends (:mod:`.backends`: attributes | openai |
vllm), their Ray wiring (:mod:`.caption_stage`) and the resumable run (:mod:`.run`, ``uniqa caption``)."""

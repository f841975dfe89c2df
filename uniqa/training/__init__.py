"""Pre-training (METHOD §2): ``config`` (PretrainConfig), ``ingest`` (the corpus as a seeded stream of views and
tokens, pure batch functions), ``loss`` (open_clip ClipLoss, global negatives), ``loop`` (the Ray-free training
loop, checkpoints, export) and ``run`` (``run_pretrain``: Ray Data + Ray Train); ``uniqa pretrain`` is ``cli``."""

"""Ray Tune sweeps (``uniqa tune``): the only package that imports ``ray.tune``. The sweep definitions are data in
the top-level ``tuning/`` folder. ``config`` (TuneConfig), ``sweep`` (``run_tune``: the Tuner, ledger, table and
best trial, for every kind), one module per kind: ``adapter`` and ``pretrain``; ``uniqa tune`` is ``cli``."""

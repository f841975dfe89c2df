"""Ray Tune sweeps (``uniqa tune``): the only package that imports ``ray.tune``. The sweep definitions are data in
the top-level ``tuning/`` folder; see :mod:`uniqa.tuning.run`."""

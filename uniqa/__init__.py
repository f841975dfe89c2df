"""uniqa: UniQA (unified vision-language pre-training for image quality and aesthetics) on Ray.

Data flow (one sub-package per stage): data -> captioning -> purification -> corpus -> training
-> adapters -> scoring -> evaluation. Ray appears only in ``*_stage.py`` wrappers and run functions.
"""

import os as _os

from uniqa.errors import UniqaError
from uniqa.runtime import THREAD_ENV as _THREAD_ENV

# OpenMP reads its wait policy once, when torch loads it: set it here, before any uniqa module imports torch.
for _key, _value in _THREAD_ENV.items():
    _os.environ.setdefault(_key, _value)

__version__ = "0.1.0"
__all__ = ["UniqaError", "__version__"]

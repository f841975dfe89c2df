"""uniqa: UniQA (unified vision-language pre-training for image quality and aesthetics) on Ray.

Data flow (one sub-package per stage): data -> captioning -> purification -> corpus -> training
-> adapters -> scoring -> evaluation. Ray appears only in ``*_stage.py`` wrappers and run functions.
"""

from uniqa.errors import UniqaError

__version__ = "0.1.0"
__all__ = ["UniqaError", "__version__"]

"""The HTML report of a run folder: ``build_report(run_dir, out=None) -> path`` (``uniqa report RUN_DIR``).

One module per concern: ``load`` (what the folder holds), ``html`` (markup), ``plots`` (figures), ``gallery``
(thumbnails), the sections (``evaluation``, ``training``, ``samples``, ``scoring``, ``run_info``), ``build``
(assembly) and ``screenshot`` (headless Chromium). Imported on first use, so ``uniqa --help`` stays fast.
"""

__all__ = ["build_report"]


def __getattr__(name: str):
    if name == "build_report":
        from uniqa.report.build import build_report

        return build_report
    raise AttributeError(f"module 'uniqa.report' has no attribute {name!r}")

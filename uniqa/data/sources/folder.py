"""``folder``: every image below a folder or ``s3://`` prefix (recursive), unlabelled (mos null)."""

from __future__ import annotations

from uniqa import storage
from uniqa.data.sources.base import IMAGE_SUFFIXES, Records, image_id, opt_task, register_source
from uniqa.errors import UniqaError


def list_images(root: str, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[tuple[str, str]]:
    """(path relative to ``root``, URI) of every image file below ``root``, sorted."""
    _, base = storage.resolve(root)
    try:
        if not storage.is_dir(root):
            raise UniqaError(f"folder not found: {root}")
        uris = storage.list_files(root, suffixes)
    except OSError as e:
        raise UniqaError(f"cannot list {root}: {e}") from e
    prefix = base.rstrip("/") + "/"
    return [((u[len("s3://"):] if storage.is_s3(u) else u)[len(prefix):], u) for u in uris]


@register_source(
    name="folder",
    task="quality",
    mos_range=None,
    description="every image below a folder or s3:// prefix (recursive), no scores",
    options={
        "task": "quality or aesthetics",
        "dataset": "dataset name written in the manifest and image ids",
        "extensions": "comma-separated image extensions (default " + ",".join(IMAGE_SUFFIXES) + ")",
    },
)
def read_folder(root: str, task: str = "quality", dataset: str = "folder", extensions: str = "") -> Records:
    suffixes = tuple(e.strip().lower() if e.strip().startswith(".") else "." + e.strip().lower()
                     for e in extensions.split(",") if e.strip()) or IMAGE_SUFFIXES
    found = list_images(root, suffixes)
    if not found:
        raise UniqaError(f"no image files ({', '.join(suffixes)}) below {root}")
    return Records(
        image_id=[image_id(dataset, rel) for rel, _ in found],
        image_uri=[uri for _, uri in found],
        mos=[None] * len(found),
        dataset=dataset,
        task=opt_task(task),
        files_listed=True,
    )

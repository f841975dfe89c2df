"""Small helpers on stage inputs and outputs shared by captioning, purification and the corpus."""

from __future__ import annotations

import json
import posixpath
import re

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from uniqa import storage
from uniqa.errors import UniqaError


def dataset_schema(files: list[str]) -> pa.Schema:
    """The unified schema of Parquet ``files`` (reads footers only)."""
    fs, _ = storage.resolve(files[0])
    try:
        return pads.dataset([storage.resolve(f)[1] for f in files], format="parquet", filesystem=fs).schema
    except (pa.ArrowInvalid, OSError) as e:
        raise UniqaError(f"cannot read Parquet {files[0]} ...: {e}") from None


def remove_parts(folder: str) -> int:
    """Delete ``part-*.parquet`` and ``_tmp-*`` files directly under ``folder``; returns how many."""
    if not storage.exists(folder):
        return 0
    fs, root = storage.resolve(folder)
    stale = [i.path for i in fs.get_file_info(pafs.FileSelector(root, recursive=False))
             if i.type == pafs.FileType.File and posixpath.basename(i.path).startswith(("part-", "_tmp-"))]
    for path in stale:
        fs.delete_file(path)
    return len(stale)


def check_run_identity(out: str, identity: dict, name: str = "_run.json") -> None:
    """Refuse to mix outputs of different settings in one folder: ``identity`` is stored under ``out`` on
    the first run and must match on every rerun (resume)."""
    uri = storage.join(out, name)
    if storage.exists(uri):
        before = json.loads(storage.read_bytes(uri))
        differ = {k: (before.get(k), v) for k, v in identity.items() if before.get(k) != v}
        if differ:
            key, (old, new) = next(iter(differ.items()))
            raise UniqaError(f"{out} holds output made with {key}={old!r}, this run has {key}={new!r}; "
                             "resume with the same settings or use another --out")
        return
    storage.write_bytes(uri, json.dumps(identity, indent=2).encode())


def user_error_in(exc: BaseException) -> str | None:
    """The message of a :class:`UniqaError` a Ray worker raised, found through Ray's wrappers (``cause``,
    ``__cause__``) or, when Ray kept only the text (an actor that died in ``__init__``), in the message."""
    seen, todo = set(), [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, UniqaError) and type(e).__module__.startswith("uniqa"):
            return str(e).splitlines()[0]
        todo += [getattr(e, "cause", None), e.__cause__, e.__context__]
    found = re.findall(r"uniqa\.errors\.UniqaError: (.+)", str(exc))
    return found[-1].strip() if found else None


def drain_user_errors(fn, *args, **kwargs):
    """Run ``fn`` (which drives a Ray job); a UniqaError raised in a worker comes out as that one-line error."""
    try:
        return fn(*args, **kwargs)
    except UniqaError:
        raise
    except Exception as e:  # Ray wraps worker exceptions; surface bad input as the one-line error it is
        message = user_error_in(e)
        if message is None:
            raise
        raise UniqaError(message) from None

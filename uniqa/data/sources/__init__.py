"""Dataset sources: each reads one published file format into :class:`Records`.

``SOURCES.get(name)`` returns a :class:`Source`; :func:`uniqa.data.prepare.prepare` turns its
records into a validated manifest (normalisation, levels, splits, file checks).
"""

from uniqa.data.sources.base import SOURCES, Records, Source, get_source

# Importing the modules registers the sources: official formats first, then the generic ones.
from uniqa.data.sources import koniq, spaq, livec, kadid, tid2013, ava, aadb, flive  # noqa: F401,E402  isort: skip
from uniqa.data.sources import csiq, live, agiqa3k  # noqa: F401,E402  isort: skip
from uniqa.data.sources import folder, table, manifest  # noqa: F401,E402  isort: skip

__all__ = ["SOURCES", "Records", "Source", "get_source"]

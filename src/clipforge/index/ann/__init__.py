"""Search indexes for a collection: FAISS factory strings (``auto`` picks one), a trained main
index plus an exact fresh part so that adding items costs no rebuild, and files that open
memory-mapped. See ``indexes.py`` for how the parts fit together."""

from .factory import AUTO
from .indexes import KINDS, Indexes
from .policy import Job
from .searcher import SearchIndex
from .settings import IndexSettings

__all__ = ["AUTO", "KINDS", "IndexSettings", "Indexes", "Job", "SearchIndex"]

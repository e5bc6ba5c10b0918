"""Image-text datasets built offline from local packages, in clipforge's pair-dataset format.

The pair-dataset format is one folder:

- ``pairs.csv``: UTF-8 with a header row, one row per (image, caption). Columns ``image``
  (path relative to the folder, forward slashes), ``caption``, ``split`` (``train``,
  ``val`` or ``test``), ``label`` (class name for zero-shot; may be empty), ``lang``
  (language of the caption), ``kind`` (where the caption came from; may be empty), then any
  extra columns a builder documents. An image with several captions has several rows,
  all with the same split.
- ``images/``: the image files.
- ``dataset.json``: ``format`` ("clipforge-pairs"), ``format_version``, ``name``,
  ``description``, ``sources`` (package -> version), ``params``, ``split_rule``,
  ``columns`` (name -> meaning), ``counts`` (images and captions, per split and per
  language) and ``skipped`` (reason -> count). It is written last: a folder without it is
  not a finished dataset.

Splits are fixed: a hash of a stable group key (see ``common.split_for``), so rebuilding
gives the same split for every image and near-copies share a split.
"""

from __future__ import annotations

from .clipart import ClipartConfig, build_clipart
from .common import FORMAT, SPLITS, BuildResult, Caption, PairDatasetWriter, read_info, split_for
from .emoji import EmojiConfig, build_emoji

__all__ = [
    "FORMAT", "SPLITS", "BuildResult", "Caption", "ClipartConfig", "EmojiConfig", "PairDatasetWriter",
    "build_clipart", "build_emoji", "read_info", "split_for",
]

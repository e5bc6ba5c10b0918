"""When a main index must be built, folded or rebuilt.

- No main index: build one as soon as there are items (for a small kind, an exact one).
- ``FOLD_AT`` items changed since it was built: fold them in (no retraining). This bounds the
  exact part, and so the cost it adds to every query.
- Rebuild (retrain) when the settings changed, when ``auto`` would now choose an exact index
  rather than an approximate one or the reverse (by a margin of ``SWITCH_MARGIN``), when the collection has grown past
  ``RETRAIN_GROWTH`` times what the index was trained on, or when its stale entries
  (tombstones, items changed since it was built) pass ``COMPACT_SHARE`` of its positions.
"""

from __future__ import annotations

from dataclasses import dataclass

from .factory import AUTO, default_budget, effective_factory, family, resident_bytes
from .files import Manifest
from .settings import IndexSettings

FOLD_AT = 10_000
RETRAIN_GROWTH = 4
COMPACT_SHARE = 0.3
SWITCH_MARGIN = 2


@dataclass(frozen=True)
class Job:
    kind: str
    action: str  # "build" or "fold"
    reason: str
    count: int   # live items of the kind

    def describe(self) -> str:
        verb = "folding new items into" if self.action == "fold" else "building"
        return f"{verb} the {self.kind} index ({self.reason})"


def plan(kind: str, manifest: Manifest | None, settings: IndexSettings, live: int, changed: int, stale: int,
         dim: int) -> Job | None:
    """What is due for one kind, given its main index and counts: ``live`` items, ``changed``
    since the index was built, ``stale`` entries in it (tombstones, items changed since)."""
    if manifest is None:
        return Job(kind, "build", f"{live:,} items, none indexed yet", live) if live else None
    if (manifest.setting, manifest.budget) != (settings.type, settings.budget):
        return Job(kind, "build", f"the index settings are now {settings.describe()}", live)
    # auto changes family only well past its threshold, so that a collection near it does
    # not rebuild back and forth
    judged = live // SWITCH_MARGIN if family(manifest.factory) == "exact" else live * SWITCH_MARGIN
    wanted = effective_factory(settings.type, judged if settings.type == AUTO else live, dim, settings.budget)
    if family(wanted) != family(manifest.factory) if settings.type == AUTO else wanted != manifest.factory:
        return Job(kind, "build", f"{live:,} items call for {wanted}, not {manifest.factory}", live)
    if settings.type == AUTO and resident_bytes(manifest.factory, live, dim) > (settings.budget or default_budget()):
        return Job(kind, "build", f"{live:,} items outgrow the memory budget in {manifest.factory}", live)
    if manifest.trained_on and live > RETRAIN_GROWTH * manifest.trained_on:
        return Job(kind, "build", f"retraining: {live:,} items, trained on {manifest.trained_on:,}", live)
    if stale > FOLD_AT and stale > COMPACT_SHARE * manifest.positions:
        return Job(kind, "build", f"compacting: {stale:,} of {manifest.positions:,} entries are stale", live)
    if changed > FOLD_AT:
        return Job(kind, "fold", f"{changed:,} items changed", live)
    return None

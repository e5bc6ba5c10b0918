"""Emoji facts from local Unicode files: the emoji list with groups, and CLDR names and keywords.

``emoji-test.txt`` (Debian package unicode-data) lists every emoji with its qualification
status, group and subgroup. CLDR ``annotations/<lang>.xml`` and ``annotationsDerived/<lang>.xml``
(unicode-cldr-core) give a short name ("tts") and keywords per language; the derived file
covers skin-tone, gender and flag sequences. CLDR keys carry no U+FE0F, so lookups drop it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from ...errors import InputError

FE0F = 0xFE0F
ZWJ = 0x200D
SKIN_TONES = frozenset(range(0x1F3FB, 0x1F400))
HAIR = frozenset(range(0x1F9B0, 0x1F9B4))
GENDER_SIGNS = frozenset({0x2640, 0x2642})
MAN, WOMAN, PERSON = 0x1F468, 0x1F469, 0x1F9D1
# Kept statuses: one entry per emoji. Minimally- and unqualified forms draw the same glyph.
KEPT_STATUSES = frozenset({"fully-qualified", "component"})
_LINE = re.compile(r"^([0-9A-Fa-f ]+?)\s*;\s*([a-z-]+)\s*#\s*\S+\s+E(\d+\.\d+)\s+(.+?)\s*$")


@dataclass(frozen=True)
class EmojiEntry:
    codepoints: tuple[int, ...]
    group: str
    subgroup: str
    name: str  # the English CLDR short name as emoji-test.txt prints it
    version: str

    @property
    def text(self) -> str:
        return "".join(map(chr, self.codepoints))

    @property
    def hex(self) -> str:
        return "_".join(f"{cp:x}" for cp in self.codepoints)


def read_emoji_test(path: Path) -> list[EmojiEntry]:
    """The fully-qualified emoji and components of ``emoji-test.txt``, in file order."""
    entries: list[EmojiEntry] = []
    group = subgroup = ""
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.startswith("# group:"):
            group = line.split(":", 1)[1].strip()
        elif line.startswith("# subgroup:"):
            subgroup = line.split(":", 1)[1].strip()
        elif line and not line.startswith("#"):
            match = _LINE.match(line)
            if match and match.group(2) in KEPT_STATUSES:
                codepoints = tuple(int(cp, 16) for cp in match.group(1).split())
                entries.append(EmojiEntry(codepoints, group, subgroup, match.group(4), match.group(3)))
    if not entries:
        raise InputError(f"{path} lists no emoji; is it Unicode's emoji-test.txt?")
    return entries


def base_key(codepoints: tuple[int, ...]) -> str:
    """The key shared by an emoji and its skin-tone, hair and gender variants.

    Variants look nearly alike, so they must land in one split; otherwise the test split
    would hold near-copies of training images. "man", "woman" and "person" forms of a
    sequence (and families and couples of any make-up) share a key for the same reason.
    """
    parts: list[list[int]] = [[]]
    for cp in codepoints:
        if cp == ZWJ:
            parts.append([])
        elif cp not in SKIN_TONES and cp != FE0F:
            parts[-1].append(PERSON if cp in (MAN, WOMAN) else cp)
    kept = [p for p in parts if p and not (len(p) == 1 and (p[0] in GENDER_SIGNS or p[0] in HAIR))]
    key = "_200d_".join("_".join(f"{cp:x}" for cp in part) for part in kept)
    # A lone skin-tone or hair swatch has nothing left: it is its own base.
    return key or "_".join(f"{cp:x}" for cp in codepoints)


def cldr_key(text: str) -> str:
    return text.replace(chr(FE0F), "")


@dataclass(frozen=True)
class Annotation:
    name: str
    keywords: tuple[str, ...]


def read_cldr(cldr_common: Path, lang: str) -> dict[str, Annotation]:
    """Name and keywords per emoji (keyed by ``cldr_key``) for one CLDR language."""
    files = [Path(cldr_common) / sub / f"{lang}.xml" for sub in ("annotations", "annotationsDerived")]
    if not files[0].exists():
        raise InputError(f"CLDR has no emoji annotations for language {lang!r} ({files[0]} is missing)")
    names: dict[str, str] = {}
    keywords: dict[str, tuple[str, ...]] = {}
    for file in filter(Path.exists, files):
        for node in ElementTree.parse(file).iter("annotation"):
            cp, value = node.get("cp"), (node.text or "").strip()
            # "↑↑↑" means "inherit from the parent locale": no text of its own.
            if not cp or not value or value == "↑↑↑":
                continue
            if node.get("type") == "tts":
                names[cldr_key(cp)] = value
            else:
                keywords[cldr_key(cp)] = tuple(k.strip() for k in value.split("|") if k.strip())
    return {key: Annotation(name, keywords.get(key, ())) for key, name in names.items()}

"""Caption cleaning for Open Clip Art Library metadata.

The SVG metadata of the 0.18 release is noisy: a third of the titles name a collection
("gramastar" on 1,375 stars, "Part of the Flat Icon Collection (Wed Aug 25 ...)", "Lemon SVG
theme") rather than the picture; others are file names ("as_pique", "pantyhose9"), credits
("Clipart by Nicu Buculei - baloon1_04") or empty. Descriptions hold e-mail addresses, URLs,
"EPS converted from ...", Perl artefacts ("HASH(0x858b108)") and blurbs shared by whole
series. Tags hold author names, "hash", and run-together words. The functions here keep
what describes the picture and turn file-name-like text into words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from .common import normalize_text

_URL = re.compile(r"(?:https?://|ftp://|www\.)\S+", re.I)
_EMAIL = re.compile(r"\S+@\S+\.\w+")
_FILE_NAME = re.compile(r"\S+\.(?:svg|png|jpe?g|gif|eps|ai)\b", re.I)
_CREDIT_PREFIX = re.compile(r"^(?:clip ?art|drawing|image|picture)s? by [^-:]+[-:]\s*", re.I)
_BOILERPLATE = [re.compile(p, re.I) for p in (
    r"\bpart of (?:the )?.*\b(?:collection|set|series|theme|icons)\b",
    r"\bcollection by\b", r"\bicon ?set\b", r"(?:^|[\s_-])theme$", r"\bsvg (?:theme|icons?)\b",
    r"\bcreated? (?:with|by|in|using)\b", r"\b(?:made|drawn|done) (?:with|in|using) (?:the )?inkscape\b",
    r"\bconverted (?:from|with|to|by)\b", r"\bhash\(0x[0-9a-f]+\)",
    r"\bpublic domain\b", r"\blicen[cs]e[ds]?\b", r"\bcopyright\b", r"\(c\)", "©",
    r"\ball rights reserved\b", r"\bcreative commons\b", r"\bcc[- ]by\b", r"\bsubmission\b",
    r"^(?:data|image|photo|source)s? from\b", r"\bcontact:", r"\bopen ?clip ?art\b",
    r"\bderivative of\b",
)]
GENERIC = frozenset({
    "untitled", "unnamed", "noname", "no name", "image", "picture", "drawing", "new drawing",
    "clipart", "clip art", "svg", "png", "icon", "new", "layer", "layer 1", "document",
    "new document", "test", "figure", "object", "graphic", "sketch", "various", "misc",
})
NOISE_TAGS = frozenset({
    "hash", "unsorted", "special", "misc", "miscellany", "other", "clipart", "clip art", "svg",
    "inkscape", "openclipart", "lemon theme icon", "mapsym", "weathersym", "magick", "various",
    "theme",
})
_MAX_TAG_LETTERS = 20  # longer tags without a space are run-together words ("plantsvegetablesonion")
MAX_DESCRIPTION = 300


def clean_text(text: str | None) -> str:
    """URLs, e-mail addresses and file names removed, whitespace collapsed, stray punctuation trimmed."""
    if not text:
        return ""
    text = _FILE_NAME.sub(" ", _EMAIL.sub(" ", _URL.sub(" ", text)))
    return normalize_text(text).strip(" -_:;,.|/")


def is_boilerplate(text: str) -> bool:
    return any(p.search(text) for p in _BOILERPLATE)


def is_informative(text: str) -> bool:
    """Three or more letters and not a generic placeholder such as "untitled"."""
    letters = sum(ch.isalpha() for ch in text)
    return letters >= 3 and text.casefold() not in GENERIC


def looks_like_filename(text: str) -> bool:
    """A single token with underscores, digits glued to letters, or an image extension."""
    if re.search(r"\.(?:png|svg|jpe?g|gif|bmp|eps|ai)$", text, re.I):
        return True
    return " " not in text and bool(re.search(r"_|[a-z]\d|[a-z][A-Z]", text))


def humanize(name: str, creator: str = "") -> str:
    """"acquila_architetto_franc_01" -> "acquila"; "filmPhoto3" -> "film photo".

    File names of this release are "<title>_<author, cut short>_<NN>": trailing numbers
    go, and so does a tail of words that start words of the author's name, with any
    single letters in it ("old_car_lumen_design_st_r"). A single letter without an author
    word around it stays ("simple_s_8" is the eight of spades: "simple s").
    """
    name = re.sub(r"\.(?:png|svg|jpe?g|gif|bmp|eps|ai)(?=[\s_-]|$)", "", name, flags=re.I)
    name = re.sub(r"[\s_-]+v\d+(?:\.\d+)*$", "", name)  # a version: "beachball_v0.1", "icon_v16"
    name = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)
    words = [w for w in re.split(r"[\s_]+|(?<!\d)-|-(?!\d)|(?<=[a-zA-Z])(?=\d)", name) if w]
    author = {_alnum(w) for w in creator.split()} - {""} | {"openclipart"}
    keep = len(words)
    for end in range(len(words) - 1, 0, -1):
        last = _alnum(words[end])
        if last and any(a.startswith(last) for a in author):
            keep = end  # an author word: the tail from here on goes
        elif last and not re.fullmatch(r"v?\d+|[a-z]", last):
            break
    while keep > 1 and re.fullmatch(r"v?\d+|", _alnum(words[keep - 1])):
        keep -= 1
    return normalize_text(" ".join(words[:keep]).lower())


def _alnum(word: str) -> str:
    return re.sub(r"\W|_", "", word).casefold()


def title_from_meta(title: str | None, creator: str = "") -> str | None:
    """The metadata title as words, or None when it is a credit, boilerplate or a placeholder."""
    text = re.sub(r"\s*#\s*\d+$", "", _CREDIT_PREFIX.sub("", clean_text(title)))
    if not text or is_boilerplate(text):
        return None
    if looks_like_filename(text):
        text = humanize(text, creator)
    return text if is_informative(text) else None


def pick_title(title: str | None, stem: str, creator: str, collections: set[str]) -> str | None:
    """The picture's name: the metadata title unless it names a collection, else the file name."""
    text = title_from_meta(title, creator)
    if text and text.casefold() not in collections:
        return text
    # Some files are named after their credit line: "clipart_by_nicu_buculei_-_baloon1_04_01".
    name = humanize(_CREDIT_PREFIX.sub("", stem.replace("_", " ")), creator)
    return name if is_informative(name) else None


def pick_description(description: str | None, title: str | None, creator: str, shared: set[str]) -> str | None:
    """The description when it says something about this picture and more than its title.

    Descriptions that mention Inkscape talk about how the file was made, not what it shows.
    """
    text = clean_text(description)
    if not text or is_boilerplate(text) or "inkscape" in text.casefold() or text.casefold() in shared:
        return None
    if not is_informative(text):
        return None
    if text.casefold() in {(title or "").casefold(), normalize_text(creator).casefold()}:
        return None
    if len(text) > MAX_DESCRIPTION:
        cut = text[:MAX_DESCRIPTION]
        end = cut.rfind(". ")
        text = cut[: end + 1] if end > MAX_DESCRIPTION // 3 else cut.rsplit(" ", 1)[0]
    return text


def clean_tags(tags: Iterable[str], creator: str = "", folders: Sequence[str] = ()) -> list[str]:
    """Tags as words, without noise, author names or repeats; folder names are added last.

    The folder path was chosen by the package's curators, so it is the most reliable
    category text there is; tags the artists typed come first because they are specific.
    """
    author = normalize_text(creator).casefold()
    author_words = set(author.split())
    kept: list[str] = []
    seen: set[str] = set()
    for tag in [*tags, *folders]:
        tag = normalize_text(re.sub(r"[_]+", " ", clean_text(tag))).lower()
        if (not is_informative(tag) or tag in NOISE_TAGS or is_boilerplate(tag) or tag == author or tag in author_words
                or re.fullmatch(r"[\d\s.]+", tag) or ("@" in tag)
                or (" " not in tag and len(tag) > _MAX_TAG_LETTERS)):
            continue
        singular = tag[:-1] if tag.endswith("s") else tag
        if tag in seen or singular in seen or f"{tag}s" in seen:
            continue
        seen.add(tag)
        kept.append(tag)
    return kept


def folder_words(folders: Sequence[str]) -> list[str]:
    """Folder names as tags: "signs_and_symbols" -> "signs and symbols"; theme folders dropped."""
    words = []
    for folder in folders:
        word = normalize_text(re.sub(r"[_-]+", " ", folder)).lower()
        if word and not word.endswith("theme") and word not in NOISE_TAGS:
            words.append(word)
    return words

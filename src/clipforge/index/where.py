"""Filters on metadata: ``taken>=2023-06-01``, ``camera~Pixel``, ``folder in a,b``, ``gps exists``.

One expression per condition; several conditions all hold (AND). The same strings work in
``Collection.search(where=...)``, ``clipforge search --where``, ``POST /search`` (``where``) and
the web page; Python callers (and ``POST /search``'s ``filters``) may also give a dict,
``{"shard": 7, "license": ["cc0", "cc-by"]}``, for equality, alone or in a list of expressions.

    key = value      key != value      key > value   key >= value   key < value   key <= value
    key ~ text       a case-insensitive substring, or a glob when it holds * ? or [ ]
    key !~ text      the opposite
    key in a,b,c     one of them           key not in a,b,c
    key exists       the item has the key  key missing

Values are compared as numbers when both sides are numbers or times (see ``values.py``),
else as text. ``path`` and ``text`` name the item's own path and text; every other key is
a metadata key. A condition on a key an item lacks is false for it, ``missing`` aside.
The conditions become one SQL query answered from indexes, before any ranking. Key words
(in, not in, exists, missing) may be written in any case; white space around the parts is
ignored; keys hold no white space and none of = < > ! ~.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from .values import wanted

_OPERATORS = ("!=", ">=", "<=", "!~", "=", ">", "<", "~")
# The grammar of one expression, as one regular expression that means the same in Python and
# in JSON Schema (ECMA-262), so that the HTTP API's schema states exactly what is accepted:
# no flags, no named groups, and white space spelled out as the characters str.strip()
# strips (``\s`` differs between the two).
SPACE = r"\t\n\u000b\f\r\u001c-\u001f \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_S = f"[{SPACE}]"
_KEY = f"([^{SPACE}=<>!~]+)"
_PIECE = f"{_S}*[^,{SPACE}][^,]*"  # one value of a list; each piece matches one way only, so a
# failing match cannot backtrack through every way of splitting the list


def _word(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" for c in word)


EXPRESSION = (
    f"^{_S}*(?:"
    f"{_KEY}{_S}+({_word('exists')}|{_word('missing')})"
    f"|{_KEY}{_S}+((?:{_word('not')}{_S}+)?{_word('in')}){_S}+({_PIECE}(?:,{_PIECE})*)"
    f"|{_KEY}{_S}*(!=|>=|<=|!~|=|>|<|~){_S}*([^{SPACE}](?:[\\s\\S]*[^{SPACE}])?)"
    f"){_S}*$"
)
_EXPRESSION = re.compile(EXPRESSION)
# Near misses, for a message that says what is wrong with them.
_WORD_OPERATOR = re.compile(f"^{_S}*{_KEY}{_S}+(not{_S}+in|in|exists|missing)(?=[{SPACE},]|$)", re.IGNORECASE)
_ITEM_COLUMNS = {"path": "items.path", "text": "items.text"}
_GLOB = re.compile(r"[*?\[\]]")
MAX_CONDITIONS = 32


@dataclass(frozen=True)
class Condition:
    key: str
    op: str  # one of _OPERATORS, "in", "not in", "exists", "missing"
    values: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.op in ("exists", "missing"):
            return f"{self.key} {self.op}"
        joined = ",".join(self.values)
        return f"{self.key} {self.op} {joined}" if self.op in ("in", "not in") else f"{self.key}{self.op}{joined}"


def parse(where: str | Iterable[str] | Mapping[str, Any] | None) -> list[Condition]:
    """The conditions of a ``where``: None, one expression, a dict of equalities, or a list of these."""
    if where is None:
        return []
    parts = [where] if isinstance(where, (str, Mapping)) else list(where)
    conditions = []
    for part in parts:  # expressions, and dicts of equalities (the HTTP API sends both)
        if isinstance(part, Mapping):
            conditions += [_from_pair(str(key), value) for key, value in part.items()]
        else:
            conditions.append(_from_text(part))
    if len(conditions) > MAX_CONDITIONS:
        raise InputError(f"at most {MAX_CONDITIONS} filter conditions, got {len(conditions)}")
    return conditions


def _from_pair(key: str, value: Any) -> Condition:
    if isinstance(value, (list, tuple, set)):
        return Condition(key, "in", tuple(_as_text(v) for v in value))
    return Condition(key, "=", (_as_text(value),))


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or isinstance(value, (dict, list)):
        raise InputError(f"a filter value must be a text, a number or a boolean, not {value!r}")
    return str(value)


def _from_text(text: str) -> Condition:
    if not isinstance(text, str) or not text.strip():
        raise InputError("empty filter: write it as key=value, key>=value, key~text, key in a,b or key exists")
    match = _EXPRESSION.fullmatch(text)
    if match is None:
        raise InputError(_misread(text))
    word_key, test, list_key, list_op, values, key, op, value = match.groups()
    if word_key:
        return Condition(word_key, test.lower())
    if list_key:
        return Condition(list_key, " ".join(list_op.lower().split()), tuple(v.strip() for v in values.split(",")))
    return Condition(key, op, (value,))


def _misread(text: str) -> str:
    near = _WORD_OPERATOR.match(text)
    if near and near[2].lower() in ("exists", "missing"):
        return f"filter {text!r}: nothing may follow {near[2].lower()!r}"
    if near:
        return f"filter {text!r}: give the values after {' '.join(near[2].lower().split())!r}, separated by commas"
    return f"cannot read the filter {text!r}: write it as key=value, key>=value, key~text, key in a,b or key exists"


def sql(conditions: list[Condition]) -> tuple[str, list]:
    """A WHERE clause on ``items`` (and its parameters) that holds where every condition does."""
    clauses, params = [], []
    for condition in conditions:
        clause, values = _clause(condition)
        clauses.append(clause)
        params += values
    return " AND ".join(clauses) or "1", params


def _clause(c: Condition) -> tuple[str, list]:
    column = _ITEM_COLUMNS.get(c.key)
    if c.op in ("exists", "missing"):
        inner = f"{column} IS NOT NULL" if column else "items.id IN (SELECT item_id FROM item_values WHERE key = ?)"
        clause = inner if c.op == "exists" else f"NOT ({inner})"
        return clause, [] if column else [c.key]
    test, params = _test(c, column or "v.text", None if column else "v.num")
    negated = c.op in ("!=", "!~", "not in")
    if column:
        clause = f"{column} IS NOT NULL AND {'NOT ' if negated else ''}({test})"
        return clause, params
    # A negated test holds for items that have the key with another value.
    clause = (f"items.id IN (SELECT v.item_id FROM item_values v WHERE v.key = ? AND "
              f"{'NOT ' if negated else ''}({test}))")
    return clause, [c.key, *params]


def _test(c: Condition, text_column: str, num_column: str | None) -> tuple[str, list]:
    """The positive form of a condition on one value (a text column, and a number column for metadata)."""
    op = {"!=": "=", "!~": "~", "not in": "in"}.get(c.op, c.op)
    if op == "~":
        pattern = c.values[0]
        if _GLOB.search(pattern):
            return f"{text_column} GLOB ?", [pattern]
        return f"instr(lower({text_column}), lower(?)) > 0", [pattern]
    if op == "in":
        return _one_of(c.values, text_column, num_column)
    return _compare(op, c.values[0], text_column, num_column)


def _one_of(values: tuple[str, ...], text_column: str, num_column: str | None) -> tuple[str, list]:
    """Each value compared as ``=`` would, the lot in two JSON arrays: a list of any length is
    two parameters, where SQLite caps a statement's parameters and the depth of its expressions."""
    numbers, texts = [], []
    for value in values:
        number, text = wanted(value)
        if number is not None and num_column:
            if math.isfinite(number):  # 1e999 reads as infinity, which JSON cannot hold and no value equals
                numbers.append(number)
        else:
            texts.append(text)
    parts, params = [], []
    for column, given in ((num_column, numbers), (text_column, texts)):
        if given:
            parts.append(f"{column} IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(given))
    # One of no values (an empty list in a dict of equalities): none is.
    return " OR ".join(parts) or "0", params


def _compare(op: str, value: str, text_column: str, num_column: str | None) -> tuple[str, list]:
    number, text = wanted(value)
    if number is not None and num_column:
        return f"{num_column} {op} ?", [number]
    return f"{text_column} {op} ?", [text]

"""Filters on metadata: ``taken>=2023-06-01``, ``camera~Pixel``, ``folder in a,b``, ``gps exists``.

One expression per condition; several conditions all hold (AND). The same strings work in
``Collection.search(where=...)``, ``clipforge search --where`` and ``POST /search``; Python
callers may also pass a dict, ``{"shard": 7, "license": ["cc0", "cc-by"]}``, for equality.

    key = value      key != value      key > value   key >= value   key < value   key <= value
    key ~ text       a case-insensitive substring, or a glob when it holds * ? or [ ]
    key !~ text      the opposite
    key in a,b,c     one of them           key not in a,b,c
    key exists       the item has the key  key missing

Values are compared as numbers when both sides are numbers or times (see ``values.py``),
else as text. ``path`` and ``text`` name the item's own path and text; every other key is
a metadata key. A condition on a key an item lacks is false for it, ``missing`` aside.
The conditions become one SQL query answered from indexes, before any ranking.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from .values import wanted

_OPERATORS = ("!=", ">=", "<=", "!~", "=", ">", "<", "~")
_WORD_FORM = re.compile(r"^\s*(?P<key>[^\s=<>!~]+)\s+(?P<op>not in|in|exists|missing)\b\s*(?P<value>.*)$", re.IGNORECASE)
_SYMBOL_FORM = re.compile(r"^\s*(?P<key>[^\s=<>!~]+)\s*(?P<op>!=|>=|<=|!~|=|>|<|~)\s*(?P<value>.*?)\s*$", re.DOTALL)
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
    """The conditions of a ``where``: None, one expression, several, or a dict of equalities."""
    if where is None:
        return []
    if isinstance(where, Mapping):
        conditions = [_from_pair(str(key), value) for key, value in where.items()]
    elif isinstance(where, str):
        conditions = [_from_text(where)]
    else:
        conditions = [_from_text(text) for text in where]
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
    words = _WORD_FORM.match(text)
    if words:
        key, op, rest = words["key"], words["op"].lower(), words["value"].strip()
        if op in ("exists", "missing"):
            if rest:
                raise InputError(f"filter {text!r}: nothing may follow {op!r}")
            return Condition(key, op)
        values = tuple(v.strip() for v in rest.split(","))
        if not rest or any(not v for v in values):
            raise InputError(f"filter {text!r}: give the values after {op!r}, separated by commas")
        return Condition(key, op, values)
    symbols = _SYMBOL_FORM.match(text)
    if not symbols or not symbols["value"]:
        raise InputError(f"cannot read the filter {text!r}: write it as key=value, key>=value, key~text, "
                         f"key in a,b or key exists")
    return Condition(symbols["key"], symbols["op"], (symbols["value"],))


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
        parts, params = [], []
        for value in c.values:
            part, values = _compare("=", value, text_column, num_column)
            parts.append(part)
            params += values
        return " OR ".join(f"({p})" for p in parts), params
    return _compare(op, c.values[0], text_column, num_column)


def _compare(op: str, value: str, text_column: str, num_column: str | None) -> tuple[str, list]:
    number, text = wanted(value)
    if number is not None and num_column:
        return f"{num_column} {op} ?", [number]
    return f"{text_column} {op} ?", [text]

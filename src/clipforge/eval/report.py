"""Reading result files back and lining several up for comparison."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ..errors import InputError, NotFoundError


def format_metric(key: str, value: float | None) -> str:
    """Recalls and accuracies as percentages, ranks and RSUM as numbers, None as n/a."""
    if value is None:
        return "n/a"
    if "recall@" in key or key in ("acc1", "acc5", "mean_per_class_recall"):
        return f"{100 * value:.2f}"
    if key == "rsum":
        return f"{value:.2f}"
    return f"{value:.1f}" if "rank" in key else f"{value:.4g}"


def write_result(data: dict[str, Any], path: str | Path) -> None:
    """Write JSON atomically: a crash never leaves half a result file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, ensure_ascii=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def load_result(path: str | Path) -> dict[str, Any]:
    """A result JSON written by clipforge or CLIP_benchmark."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFoundError(f"result file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"cannot read {path} as JSON: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
        raise InputError(f"{path} is not a result file: it has no 'metrics' object")
    return data


def compare(results: list[dict[str, Any]]) -> list[tuple[str, list[float | None]]]:
    """(metric, value per result) for every metric any result has, in first-seen order."""
    keys: dict[str, None] = {}
    for result in results:
        keys.update(dict.fromkeys(result["metrics"]))
    return [(key, [_number(r["metrics"].get(key)) for r in results]) for key in keys]


def _number(value: Any) -> float | None:
    # CLIP_benchmark writes an undefined acc5 as NaN; clipforge as null.
    if isinstance(value, (int, float)) and value == value:
        return float(value)
    return None

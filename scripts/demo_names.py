"""Print `clipforge search --json` results (stdin) with each image's English caption, looked
up in the pair datasets given as arguments, so the demo output says what was found."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path


def english_names(datasets: list[str]) -> dict[str, str]:
    names: dict[str, str] = {}
    for root in datasets:
        with open(Path(root) / "pairs.csv", encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                if row.get("lang", "en") == "en":
                    # The first English caption: the CLDR name, or the clip-art title.
                    names.setdefault(str((Path(root) / row["image"]).resolve()), row["caption"])
    return names


def main() -> None:
    names = english_names(sys.argv[1:])
    for result in json.load(sys.stdin)["results"]:
        path = str(Path(result["path"]).resolve())
        print(f"   {result['score']:.3f}  {names.get(path, '?'):40.40s}  {result['path']}")


if __name__ == "__main__":
    main()

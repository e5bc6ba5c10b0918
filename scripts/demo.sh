#!/usr/bin/env bash
# The main job on a fresh machine: build a real collection from installed Debian packages,
# index it with the bundled model (builtin:demo), query it, and serve it. The datasets go under
# demo/ (git-ignored), the collection is "demo" under $CLIPFORGE_HOME (so that
# `clipforge search -c demo "a red fruit"` works from anywhere); a second run reuses both: the
# builders keep a complete dataset, and indexing is incremental.
set -euo pipefail
cd "$(dirname "$0")/.."
CF=${CLIPFORGE:-.venv/bin/clipforge}
PY=${PYTHON:-.venv/bin/python}
DEMO=${DEMO_DIR:-demo}
COLLECTION=${DEMO_COLLECTION:-demo}
PORT=${PORT:-8000}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1  # the demo never needs the network

echo "== datasets (from fonts-noto-color-emoji, unicode-cldr-core, openclipart-png)"
"$CF" data emoji "$DEMO/data/emoji"
"$CF" data clipart "$DEMO/data/clipart"

# A collection embedded by an earlier builtin:demo (retrained since) is rebuilt, not mixed.
"$PY" - "$COLLECTION" <<'PYEOF'
import shutil, sys
from clipforge import Collection
from clipforge.errors import ModelMismatchError, NotFoundError
try:
    with Collection.open(sys.argv[1]) as collection:
        try:
            collection.encoder
        except ModelMismatchError as e:
            print(f"== {e}\n== so the collection is rebuilt")
            shutil.rmtree(collection.path)
except NotFoundError:
    pass
PYEOF

echo "== indexing every emoji and the clip-art test split with builtin:demo"
mapfile -t CLIPART_TEST < <("$PY" - "$DEMO/data/clipart" <<'PYEOF'
import csv, sys
root = sys.argv[1]
seen = {r["image"] for r in csv.DictReader(open(f"{root}/pairs.csv", encoding="utf-8")) if r["split"] == "test"}
print("\n".join(f"{root}/{image}" for image in sorted(seen)))
PYEOF
)
"$CF" index -c "$COLLECTION" --model builtin:demo "$DEMO/data/emoji/images" "${CLIPART_TEST[@]}"

# The server starts first: the example queries are handed to it (clipforge search finds a
# running server of the collection), so the model loads once rather than once per query.
"$CF" serve -c "$COLLECTION" --host 127.0.0.1 --port "$PORT" --log-level warning &
SERVER=$!
trap 'kill -TERM "$SERVER" 2>/dev/null || true' INT TERM
"$PY" - "$PORT" "$SERVER" <<'PYEOF'
import os, sys, time, urllib.request
port, pid = sys.argv[1], int(sys.argv[2])
while True:  # until it answers, or has died (a port in use): then the queries answer alone
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2)
        break
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
PYEOF

echo "== example queries (top 3; emoji shown by their English names)"
for query in "a red fruit" "red apple" "a dog" "a smiling face with hearts" "the flag of Japan" "a car" "a musical instrument"; do
  echo "-- $query"
  "$CF" search -c "$COLLECTION" -k 3 --json "$query" | "$PY" scripts/demo_names.py "$DEMO/data/emoji" "$DEMO/data/clipart"
done

echo "== serving the collection: http://127.0.0.1:$PORT/  (Ctrl-C stops it)"
wait "$SERVER" || true

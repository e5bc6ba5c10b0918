#!/usr/bin/env bash
# The main job on a fresh machine: index a real collection with the bundled model, query it, serve it.
set -euo pipefail
echo "clipforge demo: not yet. The bundled demo model (builtin:demo) has not been trained and shipped;" >&2
echo "until it is, index your own photos with a model you have locally:" >&2
echo "  .venv/bin/clipforge index ~/Pictures -c pics --model hf:/path/to/clip-model" >&2
exit 0

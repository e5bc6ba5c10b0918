#!/usr/bin/env bash
# System packages for the serve tests: Debian's Chromium, which the page tests drive through
# Playwright (`playwright install` downloads browsers and cannot run offline).
# Python packages come from pyproject.toml: pip install -e ".[dev]".
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi

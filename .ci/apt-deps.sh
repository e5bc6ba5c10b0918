#!/bin/sh
# Debian packages the dataset builders read (clipforge data emoji / clipart) and their tests use.
set -eu
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends fonts-noto-color-emoji unicode-cldr-core unicode-data openclipart-png openclipart-svg

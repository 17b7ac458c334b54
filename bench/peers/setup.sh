#!/usr/bin/env bash
# The peers bench/versus.py runs PixelFlow against, each in its own environment so none shares
# another's libraries: sharp (npm, bundling its own libvips) in bench/peers/node_modules, and
# Pillow-SIMD (built from source with AVX2, against Debian's libjpeg-turbo and libwebp) in
# .venv-pillow-simd. scikit-image (SSIM) and ssimulacra2 (bench.probes item 9) go into .venv for
# the quality checks, pillow-heif (the
# HEIC workload's reader for both Pillows) is a dev dependency of .venv already. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."
export DEBIAN_FRONTEND=noninteractive
if ! command -v npm >/dev/null; then apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; fi
(cd bench/peers && [ -d node_modules/sharp ] || npm install --silent --no-audit --no-fund)
if [ ! -x .venv-pillow-simd/bin/python ]; then
  apt-get install -y -qq libjpeg62-turbo-dev zlib1g-dev libwebp-dev libtiff-dev libfreetype-dev >/dev/null
  python3 -m venv .venv-pillow-simd
  CC="cc -mavx2" .venv-pillow-simd/bin/python -m pip install -q "pillow-simd==12.1.1.post0"
fi
# HEIC for both Pillows (--no-deps: it would otherwise replace Pillow-SIMD with Pillow)
.venv-pillow-simd/bin/python -m pip install -q --no-deps "pillow-heif==1.8.1"
.venv/bin/python -m pip install -q "scikit-image>=0.24,<1" "ssimulacra2==0.3.0"

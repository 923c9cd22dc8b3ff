#!/usr/bin/env bash
# Download, into .whl/, the x86-64 CPython 3.12 wheels of everything `pip install -e '.[server]'`
# needs, for a machine that cannot reach a package index (DEVELOPERS.md, "A 16-core machine").
# Usage: scripts/device_wheels.sh [PYTHON_VERSION]   (default 3.12)
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-3.12}"
mapfile -t requirements < <(python3 - <<'PY'
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
for req in project["dependencies"] + project["optional-dependencies"]["server"]:
    print(req)
PY
)
mkdir -p .whl
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 \
         manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
python3 -m pip download --quiet --only-binary=:all: --python-version "$version" \
  --implementation cp "${platforms[@]}" -d .whl "${requirements[@]}"
# The 16-core machine's image already holds NumPy and SciPy (and a setuptools to build
# banditroute with); leaving their 50 MB out keeps the tree it sends under its 64 MiB limit.
rm -f .whl/numpy-*.whl .whl/scipy-*.whl
du -sh .whl

#!/bin/sh
# The main job on the bundled samples: install, build, run the notebook
# pipeline. Products land in samples/out/notebook/.
set -eu
cd "$(dirname "$0")/.."
sh scripts/install-deps.sh
sh scripts/build.sh build
./build/pipeline/kmseg run samples/notebook.ini "$@"
echo "products in samples/out/notebook/ (summary.csv lists them)"

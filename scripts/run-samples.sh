#!/bin/sh
# The main job on the bundled samples: install, build, run the notebook
# pipeline. Products land in samples/out/notebook/.
set -eu
cd "$(dirname "$0")/.."
sh scripts/install-deps.sh
sh scripts/build.sh build
# the notebook's workflow, then the lung masks of the slices and the volume
./build/kmseg run samples/notebook.ini "$@"
./build/kmseg run samples/lung_ct.ini "$@"
./build/kmseg run samples/lung_volume.ini "$@"
echo "products in samples/out/{notebook,lung_ct,lung_volume}/ (summary.csv lists them)"

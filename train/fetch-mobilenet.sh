#!/bin/sh
# One-time setup: fetch the ImageNet MobileNetV2 (alpha 1.0, Conv1..block_10)
# shipped in npm nsfwjs and convert it to safetensors with torchvision
# mobilenet_v2().features[0:12] names and layouts.
#   usage: train/fetch-mobilenet.sh OUT.safetensors
# Needs node + npm and the npm registry (only for the install, skipped if
# train/node_modules already holds the pinned version).
set -eu

NSFWJS_VERSION=4.4.0
TFJS_VERSION=4.22.0     # only needed by train/mobilenet/activations.mjs (check)

if [ $# -ne 1 ]; then
    echo "usage: $0 OUT.safetensors" >&2
    exit 2
fi
out=$1
here=$(cd "$(dirname "$0")" && pwd)

have=$(node -e "try{console.log(require('$here/node_modules/nsfwjs/package.json').version)}catch(e){}" 2>/dev/null || true)
if [ "$have" != "$NSFWJS_VERSION" ]; then
    echo "installing nsfwjs@$NSFWJS_VERSION into $here/node_modules" >&2
    # --no-save: train/ has no package.json; --ignore-scripts: nothing here needs them
    (cd "$here" && npm install --no-save --no-audit --no-fund --ignore-scripts \
        "nsfwjs@$NSFWJS_VERSION" "@tensorflow/tfjs@$TFJS_VERSION" >&2)
fi

mkdir -p "$(dirname "$out")"
node "$here/mobilenet/convert.mjs" "$out" >&2
echo "$out"
sha256sum "$out"

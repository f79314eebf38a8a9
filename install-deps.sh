#!/bin/sh
# Installs the Debian 12 packages lumos builds, tests and runs with.
#   ./install-deps.sh          build + run + tests
#   ./install-deps.sh --bench  also the peers the benchmarks compare against
set -eu
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
pkgs="cmake make gcc g++ pkg-config
      libhalide14-0-dev libraw-dev libtiff-dev libturbojpeg0-dev libpng-dev liblcms2-dev libjansson-dev
      libopenexr-dev libfftw3-dev
      libopenmpi-dev openmpi-bin
      rawtran-doc libraw-bin zzuf python3-skimage python3-scipy python3-torch python3-torchvision"
[ "${1:-}" = "--bench" ] && pkgs="$pkgs darktable rawtherapee hyperfine time"
$SUDO apt-get update -qq
# shellcheck disable=SC2086  # the word splitting is the package list
$SUDO apt-get install -y -qq --no-install-recommends $pkgs

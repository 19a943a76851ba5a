#!/usr/bin/env bash
# Regenerates the README's pictures, docs/figures/*.png, with the project's own
# commands: a default regression run (fit.png, the report's fig. 2a), an
# `mnist --quick` run (accuracy.png, fig. 9) and the depth study of
# `mnist --tune --quick` (studies/depth.png, one of figs. 3-8). The runs go to a
# temporary folder that is deleted at the end; only the PNGs are kept.
#
#   docs/figures.sh [MNIST.npz]     # about 20 minutes on 2 CPU cores
#
# Without MNIST.npz, Keras downloads MNIST. To copy the pictures from run
# folders you already have instead of training, name them:
#
#   REGRESSION_RUN=runs/r MNIST_RUN=runs/m STUDIES_RUN=runs/t docs/figures.sh
#
# TUNE_RUN=runs/mnist-tune (a whole `mnist --tune`, about an hour; never run
# here) adds its seven study plots, BENCHMARKS.md's figs. 3-8, as
# docs/figures/studies/*.png.
set -euo pipefail
data=()
if [[ $# -gt 0 ]]; then data=(--data "$(realpath "$1")"); fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Paths as given, resolved before leaving the caller's folder.
regression=$(realpath -m "${REGRESSION_RUN:-$work/regression}")
mnist=$(realpath -m "${MNIST_RUN:-$work/mnist}")
studies=$(realpath -m "${STUDIES_RUN:-$work/studies}")
cd "$(dirname "$0")/.."
[[ -n ${REGRESSION_RUN:-} ]] || python run.py regression --out "$regression"
[[ -n ${MNIST_RUN:-} ]] || python run.py mnist --quick "${data[@]}" --out "$mnist"
[[ -n ${STUDIES_RUN:-} ]] ||
    python run.py mnist --tune --quick --studies depth "${data[@]}" --out "$studies"

# Re-saved as 8-bit palette PNGs (the plots have few colours), each checked to
# stay under 200 KB so the repository stays small.
python - docs/figures <<PY
import sys
from pathlib import Path
from PIL import Image

pictures = {"regression-fit.png": "$regression/fit.png",
            "mnist-accuracy.png": "$mnist/accuracy.png",
            "mnist-study-depth.png": "$studies/studies/depth.png"}
tune = "${TUNE_RUN:-}"
if tune:
    pictures.update({f"studies/{png.name}": str(png)
                     for png in sorted(Path(tune, "studies").glob("*.png"))})
folder = Path(sys.argv[1])
folder.mkdir(parents=True, exist_ok=True)
for name, source in pictures.items():
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    image = Image.open(source).convert("RGB")
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(folder / name, optimize=True)
    size = (folder / name).stat().st_size
    assert size < 200_000, f"{name}: {size} bytes, over 200 KB"
    print(f"{folder / name}: {image.width}x{image.height}, {size // 1000} KB, from {source}")
PY

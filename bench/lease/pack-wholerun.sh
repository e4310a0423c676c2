#!/bin/bash
# Packs what bench/gpu-wholerun.py needs on a GPU lease (issue 22's whole runs; bench/same-lease.md, "Whole runs"):
# the worker's pins the device image lacks (.whl/) and FlashAttention-4 (worker/requirements-fa4.txt, in .fa4a-d): five
# folders that each fit one call beside the tracked tree (64 MiB a call in all). Wheels from PyPI for the device's
# cp312 / manylinux x86-64; nothing from a fetched repository. Run from the repository root; 3-6 min (xz -9e).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
exclude=$(git rev-parse --git-path info/exclude) && mkdir -p "$(dirname "$exclude")"
for d in /.whl/ /.fa4a/ /.fa4b/ /.fa4c/ /.fa4d/; do grep -qxF "$d" "$exclude" 2>/dev/null || echo "$d" >> "$exclude"; done
dl=$(mktemp -d)
P=(--no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform any
   --platform manylinux_2_34_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
   --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
pin() { grep -E "^$1==" worker/requirements.txt; }
cutlass=$(sed -n 's/^nvidia-cutlass-dsl\[cu13\]==//p' worker/requirements-fa4.txt)  # its libs wheels share the pin
[ -n "$cutlass" ] || { echo "no nvidia-cutlass-dsl[cu13] pin in worker/requirements-fa4.txt" >&2; exit 1; }
# The device image has torch 2.11, accelerate, safetensors, sentencepiece, numpy, pillow; it lacks diffusers and
# has an older transformers / peft / tokenizers than worker/requirements.txt pins.
python3 -m pip download -q "${P[@]}" -d "$dl/whl" "$(pin diffusers)" "$(pin peft)" "$(pin transformers)" "$(pin tokenizers)" importlib_metadata
# FA4 and what flash-attn-4 and nvidia-cutlass-dsl[cu13] require (the image has einops, protobuf, typing-extensions).
python3 -m pip download -q "${P[@]}" -d "$dl/fa4" $(grep -v '^#' worker/requirements-fa4.txt | sed 's/\[cu13\]//') \
  nvidia-cutlass-dsl-libs-{base,cu13,core}=="$cutlass" \
  "quack-kernels>=0.5.3" "apache-tvm-ffi<0.2,>=0.1.11" torch-c-dlpack-ext cuda-bindings==13.5.0 cuda-pathfinder
rm -rf .whl .fa4a .fa4b .fa4c .fa4d && mkdir -p .whl .fa4a .fa4b .fa4c .fa4d
cp "$dl"/whl/*.whl bench/lease/wholerun-job.sh bench/lease/poll.sh .whl/
# nvidia-cutlass-dsl-libs-cu13 is a 92 MB wheel: its nvidia_cutlass_dsl folder goes as one tar.xz in three parts.
(cd "$dl" && mkdir cu13 && cd cu13 && unzip -q ../fa4/nvidia_cutlass_dsl_libs_cu13-*.whl && tar -cf - nvidia_cutlass_dsl | xz -9e -T1 > ../cutlass.tar.xz)
split -n 3 -d "$dl/cutlass.tar.xz" "$dl/part_"
cp "$dl/part_00" .fa4b/ && cp "$dl/part_01" .fa4c/
cp "$dl/part_02" "$dl"/fa4/nvidia_cutlass_dsl_libs_core-*.whl "$dl"/fa4/cuda_pathfinder-*.whl .fa4d/
rm "$dl"/fa4/nvidia_cutlass_dsl_libs_cu13-*.whl "$dl"/fa4/nvidia_cutlass_dsl_libs_core-*.whl "$dl"/fa4/cuda_pathfinder-*.whl
cp "$dl"/fa4/*.whl .fa4a/
rm -rf "$dl"
tree=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
for d in .whl .fa4a .fa4b .fa4c .fa4d; do
  size=$(du -sb $d | cut -f1)
  echo "$d $((size / 1000000)) MB (with the tracked tree: $(((size + tree) / 1000000)) MB of the 67 MB a call carries)"
done

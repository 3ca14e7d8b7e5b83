# Shared by scripts/demo and scripts/test: install what is missing, as root, from Debian.
set -euo pipefail

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: run as root (the lab makes network namespaces): sudo $0" >&2
    exit 1
  fi
}

# ensure_packages CMD:PACKAGE ... — apt-get installs the packages whose command is missing.
ensure_packages() {
  local missing=()
  for pair in "$@"; do
    local cmd=${pair%%:*} pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

ensure_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo (Rust stable, edition 2024) is required: https://rustup.rs" >&2
    exit 1
  fi
}

ensure_lab_packages() {
  ensure_packages ip:iproute2 bird:bird2 birdc:bird2 ping:iputils-ping pgrep:procps gcc:gcc
}

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
  ensure_packages ip:iproute2 tc:iproute2 nstat:iproute2 ss:iproute2 bird:bird2 birdc:bird2 ping:iputils-ping pgrep:procps gcc:gcc curl:curl
}

# The browser the console's tests drive (headless Chromium through WebDriver).
ensure_browser() {
  ensure_packages chromium:chromium chromedriver:chromium-driver
}

# The other routers the interop tests run against (FRR, GoBGP, ExaBGP). Their system
# services are not started: the tests run each daemon themselves, in namespaces.
ensure_peer_packages() {
  local missing=0
  for cmd in /usr/lib/frr/bgpd /usr/lib/frr/bfdd vtysh gobgpd gobgp exabgp; do
    command -v "$cmd" >/dev/null 2>&1 || missing=1
  done
  [ "$missing" -eq 0 ] && return 0
  echo "==> installing frr gobgpd exabgp"
  local had_policy=0
  [ -e /usr/sbin/policy-rc.d ] && had_policy=1
  if [ "$had_policy" -eq 0 ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
  fi
  export DEBIAN_FRONTEND=noninteractive
  local status=0
  { apt-get update -qq >/dev/null && apt-get install -y -qq frr gobgpd exabgp >/dev/null; } || status=$?
  # Removed whether or not the install worked: it would block every later service start.
  [ "$had_policy" -eq 0 ] && rm -f /usr/sbin/policy-rc.d
  return "$status"
}

# Routinator, the RPKI cache the origin-validation test runs (built from crates.io: no
# Debian package serves RTR without trust anchors). Needs cargo (ensure_rust first).
ensure_routinator() {
  command -v routinator >/dev/null 2>&1 && return 0
  echo "==> building routinator 0.15 (the RPKI cache of the RPKI test) from crates.io"
  cargo install --quiet routinator --version '~0.15' --root /usr/local
}

# python3 with venv and curl, for scripts/check-openapi (its tools come from PyPI).
ensure_python() {
  ensure_packages python3:python3 curl:curl
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    ensure_packages __no_such_command__:python3-venv
  fi
}

ensure_postgres() {
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "==> installing postgresql"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq postgresql >/dev/null
  fi
}

# start_test_postgres [PORT] — a throwaway PostgreSQL cluster on 127.0.0.1:PORT (its own
# data directory, trust auth for the user `cic`), stopped and removed when the script
# exits. Exports CIC_TEST_POSTGRES for the tests that run against it.
start_test_postgres() {
  local port=${1:-54329} bin data
  bin=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")
  data=$(mktemp -d /tmp/cic-test-pg.XXXXXX)
  chown postgres: "$data"
  runuser -u postgres -- "$bin/initdb" -D "$data" -A trust -U cic >/dev/null
  runuser -u postgres -- "$bin/pg_ctl" -D "$data" -l "$data/log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $data -c max_connections=400" start >/dev/null
  # shellcheck disable=SC2064
  trap "runuser -u postgres -- '$bin/pg_ctl' -D '$data' -m fast stop >/dev/null 2>&1; rm -rf '$data'" EXIT
  export CIC_TEST_POSTGRES="postgres://cic@127.0.0.1:$port/postgres"
}

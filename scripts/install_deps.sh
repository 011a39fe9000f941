#!/usr/bin/env bash
# Installs, once, what the project's commands need on Debian 12 / Ubuntu with
# PostgreSQL 15: `build` (demo/run.sh: headers and a compiler) or `test`
# (test/run_all.sh: also CMake, GoogleTest, clang for fuzzing, TAP, Redis
# and the client drivers: psycopg 3, libpq's headers, Node.js and the exact
# node-postgres of test/drivers/package-lock.json, by `npm ci`). Says what it installs; as root it runs apt-get,
# otherwise sudo; where it can do neither it names the packages and stops.
#   scripts/install_deps.sh build|test|bench   (bench: also gnuplot for test/bench/plot.sh)
set -euo pipefail
profile=${1:-build}
packages=(postgresql-15 postgresql-server-dev-15 postgresql-contrib build-essential)
if [ "$profile" = bench ]; then
  packages+=(gnuplot-nox bc redis-server)
fi
if [ "$profile" = test ]; then
  packages+=(cmake clang libclang-rt-14-dev libgtest-dev googletest libipc-run-perl bc redis-server python3-psycopg libpq-dev)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node-postgres runs on any Node.js with npm (a machine may have one from elsewhere).
if [ "$profile" = test ] && ! command -v npm >/dev/null; then missing+=(nodejs npm); fi
install_packages() {
  echo "aggr_ext: installing missing packages: ${missing[*]}"
  install=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}")
  if ! command -v apt-get >/dev/null; then
    echo "aggr_ext: no apt-get here; install these (or their equivalents) and run again: ${missing[*]}" >&2
    exit 1
  elif [ "$(id -u)" = 0 ]; then
    apt-get update -qq && "${install[@]}" >/dev/null
  elif command -v sudo >/dev/null && { sudo -n true 2>/dev/null || [ -t 0 ]; }; then
    sudo apt-get update -qq && sudo "${install[@]}" >/dev/null
  else
    echo "aggr_ext: cannot install as $(id -un) without sudo; as root run:" >&2
    echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "aggr_ext: installed ${missing[*]}"
}

# node-postgres, the version package-lock.json pins, into test/drivers/node_modules.
install_node_modules() {
  local dir want have
  dir=$(cd "$(dirname "$0")/../test/drivers" && pwd)
  want=$(sed -n 's/.*"pg": "\(.*\)".*/\1/p' "$dir/package.json")
  have=$(node -p "require('$dir/node_modules/pg/package.json').version" 2>/dev/null || true)
  [ "$have" = "$want" ] && return
  echo "aggr_ext: installing node-postgres $want into test/drivers/node_modules (npm ci)"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
}

[ ${#missing[@]} = 0 ] || install_packages
if [ "$profile" = test ]; then install_node_modules; fi

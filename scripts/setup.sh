#!/usr/bin/env bash
# Installs what building and testing Tessera needs on a fresh Debian machine, and
# nothing when it is already there:
#   libclang-dev  RocksDB's Rust bindings are generated with libclang;
#   postgresql    tests check SQL results against a real PostgreSQL (the anchor), and
#                 drive the server with psql and pgbench;
#   openssl       the TLS tests make a throwaway self-signed certificate with it;
#   iptables      the cluster tests cut nodes off from each other with firewall rules;
#   psycopg 3     (PyPI, in a virtualenv at target/pyenv) a Python driver the server
#                 tests use.
set -euo pipefail

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

missing=()
dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then missing+=(postgresql); fi

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cd "$(dirname "$0")/.."
venv=target/pyenv
if [ ! -x "$venv/bin/python" ]; then
  mkdir -p target
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import psycopg" >/dev/null 2>&1; then
  echo "setup: installing psycopg 3 into $venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "psycopg[binary]>=3.1,<4"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is not on PATH; install Rust (https://rustup.rs) first" >&2
  exit 1
fi

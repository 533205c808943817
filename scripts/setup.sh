#!/usr/bin/env bash
# Installs the system packages building and testing Tessera needs on a fresh Debian
# machine, and nothing when they are already there:
#   libclang-dev  RocksDB's Rust bindings are generated with libclang;
#   postgresql    tests check SQL results against a real PostgreSQL (the anchor).
set -euo pipefail

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

missing=()
dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then missing+=(postgresql); fi

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is not on PATH; install Rust (https://rustup.rs) first" >&2
  exit 1
fi

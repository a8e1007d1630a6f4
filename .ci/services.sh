#!/usr/bin/env bash
# The real services the test suite starts itself (on 127.0.0.1, random ports): redis-server.
# Installed from the distribution's packages when missing; needs root (CI runs as root).
# moto's S3 server is a Python package (requirements-dev.txt), nothing to install here.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "redis-server is missing; install it as root: apt-get update && apt-get install -y redis-server" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends redis-server >/dev/null
redis-server --version

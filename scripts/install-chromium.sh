#!/usr/bin/env bash
# Installs Debian's chromium when it is missing: the report test opens the HTML report in headless Chromium
# over the DevTools protocol (tests/support/browser.py). Playwright's own browser download cannot be used
# (no host but the package registries is reachable), Debian's package can. Needs root (CI runs as root).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
echo "install-chromium: installing Debian's chromium package" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
chromium --version >&2

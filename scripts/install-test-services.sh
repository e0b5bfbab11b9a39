#!/usr/bin/env bash
# Real services the test suite talks to: a mosquitto broker (started by the tests on 127.0.0.1),
# systemd-analyze (unit verification) and headless Chromium (the live view page). Installs them from Debian when missing and root;
# otherwise says what the tests will skip.
set -euo pipefail
missing=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)  # the live view's browser test
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "install-test-services: ${missing[*]} missing and not root with apt-get: their tests will skip" >&2
fi

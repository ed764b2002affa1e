#!/usr/bin/env bash
# Installs headless Chromium and its WebDriver (Debian's chromium and chromium-driver) for the
# browser leg of .ci/run, when chromedriver is not there yet; prints the versions.
set -euo pipefail
if [ ! -x /usr/bin/chromedriver ] || [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium and chromium-driver" >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >&2
  $sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver >&2
fi
# Debian's /usr/bin/chromium is a shell wrapper that may complain on stderr; the version line
# is what matters.
/usr/bin/chromium --version 2>/dev/null
/usr/bin/chromedriver --version

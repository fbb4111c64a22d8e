#!/usr/bin/env sh
# Installs Debian's chromium and chromium-driver when they are missing and we may; otherwise says
# how to get them. The dashboard's browser tests drive /usr/bin/chromium through Playwright
# (which cannot download a browser of its own here).
set -e
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
[ -x "$CHROMIUM" ] && command -v chromedriver >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "chromium not found: installing Debian's packages (apt-get install chromium chromium-driver)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium chromium-driver fonts-dejavu-core >/dev/null
    exit 0
fi
echo "chromium is required by the browser tests (tests/browser) but not installed." >&2
echo "  Debian/Ubuntu: sudo apt-get install chromium chromium-driver" >&2
echo "  (as root, scripts/ensure-chromium.sh installs them)" >&2
echo "  elsewhere: install Chromium and set CHROMIUM=/path/to/chromium" >&2
exit 1

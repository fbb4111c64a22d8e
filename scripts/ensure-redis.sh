#!/usr/bin/env sh
# Installs Debian's redis-server when it is missing and we may; otherwise says how to get it.
set -e
command -v redis-server >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "redis-server not found: installing Debian's package (apt-get install redis-server)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    # The package starts a system instance on 6379; we only need the binary.
    (service redis-server stop || true) >/dev/null 2>&1
    exit 0
fi
echo "redis-server is required but not installed." >&2
echo "  Debian/Ubuntu: sudo apt-get install redis-server" >&2
echo "  macOS:         brew install redis" >&2
exit 1

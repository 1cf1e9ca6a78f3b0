#!/bin/sh
# setup-browser.sh: what the browser test (e2e/browser.mjs) needs: Debian's chromium and the
# playwright-core package pinned by e2e/package-lock.json (no browser download; it drives
# /usr/bin/chromium). Safe to run again: it skips what is already there.
set -eu
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
	SUDO=""
	[ "$(id -u)" -ne 0 ] && SUDO="sudo"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
fi
chromium --version

if ! command -v node >/dev/null 2>&1; then
	echo "setup-browser: node (>= 18) is needed; install Debian's nodejs and npm" >&2
	exit 1
fi
if [ ! -d e2e/node_modules/playwright-core ] || [ e2e/package-lock.json -nt e2e/node_modules/.package-lock.json ]; then
	(cd e2e && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "setup-browser: chromium and e2e/node_modules ready"

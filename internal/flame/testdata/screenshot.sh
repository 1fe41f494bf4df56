#!/bin/sh
# Renders a flame graph page in headless Chromium (Debian package
# "chromium"), as the tests do: screenshot.sh PAGE.html [OUT.png] [SEARCH]
# writes a 1200x800 screenshot and prints the DOM the page's script built.
set -eu
page=$(realpath "$1")
out=${2:-shot.png}
url="file://$page"
[ $# -ge 3 ] && url="$url#search=$3"
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
flags="--headless --no-sandbox --disable-gpu --disable-dev-shm-usage --disable-quic --no-first-run
	--disable-background-networking --disable-component-update --disable-sync
	--user-data-dir=$profile --window-size=1200,800"
# shellcheck disable=SC2086 # the flags are words on purpose
chromium $flags --screenshot="$(realpath -m "$out")" "$url" 2>/dev/null
# shellcheck disable=SC2086
chromium $flags --dump-dom "$url" 2>/dev/null

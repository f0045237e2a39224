#!/bin/sh
# Make sure a headless browser is on this machine for the experiment page's browser tests
# (tests/integration/test_ui_browser.py): Debian's chromium, driven by Playwright for Python
# through executable_path. Playwright's own browser downloads are never used. CI machines
# start clean, so install the package when it is missing; a second run does nothing.
set -eu

if [ -x /usr/bin/chromium ]; then
    exit 0
fi
sh "$(dirname "$0")/apt-install.sh" chromium
/usr/bin/chromium --version

#!/usr/bin/env bash
# Installs the headless browser that tests/api/test_playground_browser.py drives: Debian's
# chromium and chromium-driver (Playwright, from requirements-dev.txt, launches /usr/bin/chromium;
# its own browser download cannot work offline). Quick when they are already there.
set -euo pipefail

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "browser tools: no apt-get here; install chromium yourself (the browser test is skipped)" >&2
    exit 0
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    SUDO="sudo"
fi
echo "browser tools: chromium and chromium-driver from Debian"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
/usr/bin/chromium --version

#!/bin/sh
# The README's test command: on a fresh Debian machine as root, installs what
# is missing, builds, and runs the unit and integration tests, then the same
# suite again under AddressSanitizer + UBSan, then each libFuzzer target for
# a short bounded time.  LBD_SKIP_ASAN=1 / LBD_SKIP_FUZZ=1 skip those rounds.
set -eu
cd "$(dirname "$0")/.."
sh contrib/install-deps.sh
make check
if [ "${LBD_SKIP_ASAN:-0}" != 1 ]; then
	make check-asan
fi
if [ "${LBD_SKIP_FUZZ:-0}" != 1 ]; then
	make fuzz FUZZ_SECONDS="${LBD_FUZZ_SECONDS:-20}"
fi

#!/bin/sh
# The README's test command: on a fresh Debian machine as root, installs what
# is missing, builds, and runs the unit and integration tests, then the same
# suite again under AddressSanitizer + UBSan.  LBD_SKIP_ASAN=1 skips the latter.
set -eu
cd "$(dirname "$0")/.."
sh contrib/install-deps.sh
make check
if [ "${LBD_SKIP_ASAN:-0}" != 1 ]; then
	make check-asan
fi

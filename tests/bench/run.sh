#!/bin/sh
# Side-by-side benchmark of lbd against HAProxy, pen and nginx stream on
# loopback (ports 19000-19999, a private temp dir).  See README.md here.
#   sh tests/bench/run.sh [--quick] [--only lbd,haproxy] [--repeat 2] ...
# bench.py tracks every process it starts by PID and stops them on exit.
here=$(dirname "$0")
cd "$here/../.." || exit 1
exec /usr/bin/python3 tests/bench/bench.py "$@"

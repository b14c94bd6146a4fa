#!/bin/sh
# The demo: lbd on etc/lbd.conf in front of three local demo backends, some
# traffic through it, and lbstat showing where it went.  Run as root from
# anywhere in the tree: make demo (or sh contrib/demo/run-demo.sh).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
sh contrib/install-deps.sh
make -s all

# The example config drops the workers to user and group "lbd".
getent group lbd >/dev/null || groupadd --system lbd
id lbd >/dev/null 2>&1 || useradd --system --gid lbd --no-create-home \
	--home-dir /nonexistent --shell /usr/sbin/nologin lbd

tmp=$(mktemp -d)
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM PIPE

for port in 8080 9001 9002 9003; do
	if ss -Hltn "sport = :$port" | grep -q .; then
		echo "demo: port $port on 127.0.0.1 is in use; stop what listens there first" >&2
		exit 1
	fi
done

for n in 1 2 3; do
	/usr/bin/python3 contrib/demo/backend.py "app$n" "900$n" &
	pids="$pids $!"
done
# Wait (bounded) until the backends listen, so the first checks pass.
for port in 9001 9002 9003; do
	i=0
	until curl -fs -o /dev/null "http://127.0.0.1:$port/health"; do
		i=$((i + 1))
		[ $i -lt 50 ] || { echo "demo: backend on port $port did not start" >&2; exit 1; }
		sleep 0.1
	done
done
build/lbd -d -f etc/lbd.conf 2>"$tmp/lbd.log" &
lbd_pid=$!
pids="$lbd_pid $pids"

# Wait (bounded) until lbd answers.
i=0
until curl -fs -o /dev/null http://127.0.0.1:8080/; do
	i=$((i + 1))
	if [ $i -ge 50 ]; then
		echo "demo: lbd did not come up; its log:" >&2
		cat "$tmp/lbd.log" >&2
		exit 1
	fi
	sleep 0.1
done

traffic() {
	/usr/bin/python3 - "$1" <<'PY'
import collections, http.client, sys
seen = collections.Counter()
for _ in range(int(sys.argv[1])):
    c = http.client.HTTPConnection("127.0.0.1", 8080, timeout=5)
    c.request("GET", "/")
    seen[c.getresponse().read().decode().strip()] += 1
    c.close()
for name, n in sorted(seen.items()):
    print("  %-16s %d" % (name, n))
PY
}

echo "== 600 requests through lbd (127.0.0.1:8080), as the client saw them:"
traffic 600
echo
echo "== lbstat -f etc/lbd.conf"
build/lbstat -f etc/lbd.conf
echo
echo "== lbadmin drain demo/app2, then 300 more requests:"
build/lbadmin -f etc/lbd.conf drain demo/app2
traffic 300
build/lbadmin -f etc/lbd.conf show
build/lbadmin -f etc/lbd.conf enable demo/app2
echo
echo "== lbstat -j (one JSON sample)"
build/lbstat -j -f etc/lbd.conf
echo
echo "== lbd's log"
kill -TERM "$lbd_pid"
wait "$lbd_pid" 2>/dev/null || true
cat "$tmp/lbd.log"

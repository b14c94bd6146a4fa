#!/bin/sh
# check_lbd.sh: exits 0 if the local lbd is alive, 1 if not.
#
# keepalived runs it as a vrrp_script: while it fails, this node gives up
# the virtual IP.  "Alive" means the master named in the pid file exists
# and its statistics segment can be read.  Run it as root: kill -0 on a
# root process fails for other users.

PIDFILE=${PIDFILE:-/run/lbd/lbd.pid}
STATSFILE=${STATSFILE:-/run/lbd/lbd.stats}
LBSTAT=${LBSTAT:-/usr/bin/lbstat}

[ -r "$PIDFILE" ] || exit 1
pid=$(cat "$PIDFILE" 2>/dev/null) || exit 1
case $pid in
''|*[!0-9]*)
	exit 1
	;;
esac
kill -0 "$pid" 2>/dev/null || exit 1
"$LBSTAT" -s "$STATSFILE" >/dev/null 2>&1 || exit 1
exit 0

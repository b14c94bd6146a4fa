#!/bin/sh
# lbd-bird-health.sh: keeps BIRD announcing this node's service addresses
# only while the local lbd is healthy and the node is not drained.
#
#   lbd-bird-health.sh           the loop (run it as a service, as root)
#   lbd-bird-health.sh check     one check: exit 0 healthy, 1 not (and why)
#   lbd-bird-health.sh drain     planned maintenance: withdraw this node
#   lbd-bird-health.sh undrain   announce it again (once lbd is healthy)
#
# Every INTERVAL seconds it checks lbd as contrib/keepalived/check_lbd.sh
# does (the master named in the pid file is alive and its statistics segment
# reads), that at least one worker is running (not only old ones finishing
# their connections, as after SIGTERM), and that DRAIN_FILE does not exist.
# After FALL failed checks in a row it disables the BIRD protocols in
# PROTOCOLS (static protocols holding the service routes, see
# bird-node.conf), which withdraws the routes from every BGP session at
# once; after RISE good checks in a row it enables them.  The state is told
# to BIRD on every check, not only on a change, so a BIRD that restarted
# (its configuration starts them disabled) is brought back in line within
# one interval.  Until the loop has decided (FALL or RISE checks after it
# starts) it tells BIRD nothing, so restarting the loop never withdraws a
# healthy node.  The drain file lives outside /run so that a drained node
# stays drained across a reboot until someone undrains it.
#
# Settings (environment):
PIDFILE=${PIDFILE:-/run/lbd/lbd.pid}
STATSFILE=${STATSFILE:-/run/lbd/lbd.stats}
LBSTAT=${LBSTAT:-/usr/bin/lbstat}
BIRDC=${BIRDC:-/usr/sbin/birdc}
BIRD_SOCKET=${BIRD_SOCKET:-/run/bird/bird.ctl}
PROTOCOLS=${PROTOCOLS:-lbd_vips4 lbd_vips6}
DRAIN_FILE=${DRAIN_FILE:-/var/lib/lbd/withdraw}
INTERVAL=${INTERVAL:-1}			# seconds; fractions work with GNU sleep
FALL=${FALL:-2}
RISE=${RISE:-2}

say() {
	echo "lbd-bird-health: $*" >&2
}

# Exit status 0 when lbd runs and the node is not drained; the reason
# on stdout when not.
check() {
	if [ -e "$DRAIN_FILE" ]; then
		echo "drained ($DRAIN_FILE exists)"
		return 1
	fi
	pid=$(cat "$PIDFILE" 2>/dev/null)
	case $pid in
	''|*[!0-9]*)
		echo "no lbd pid in $PIDFILE"
		return 1
		;;
	esac
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "lbd master $pid is gone"
		return 1
	fi
	# lbstat's Prometheus output: lbd_workers counts running workers only.
	workers=$("$LBSTAT" -p -s "$STATSFILE" 2>/dev/null |
	    awk '$1 == "lbd_workers" { print $2 }')
	case $workers in
	'')
		echo "lbstat cannot read $STATSFILE"
		return 1
		;;
	0)
		echo "lbd has no running worker (stopping?)"
		return 1
		;;
	esac
	return 0
}

# Tells BIRD: $1 is enable or disable.  birdc answers "already ..." when
# nothing changes, which is the usual case.
tell_bird() {
	for p in $PROTOCOLS; do
		if ! out=$("$BIRDC" -s "$BIRD_SOCKET" "$1" "$p" 2>&1); then
			echo "birdc $1 $p: $out"
			return 1
		fi
		case $out in
		*"$p: enabled"*|*"$p: disabled"*|*"$p: already"*)
			;;
		*)
			echo "birdc $1 $p: $out"
			return 1
			;;
		esac
	done
	return 0
}

loop() {
	state=unknown
	good=0
	bad=0
	bird_error=""
	say "watching lbd ($PIDFILE), protocols $PROTOCOLS, every ${INTERVAL}s"
	while :; do
		if reason=$(check); then
			good=$((good + 1))
			bad=0
		else
			bad=$((bad + 1))
			good=0
		fi
		if [ "$state" != up ] && [ "$good" -ge "$RISE" ]; then
			state=up
			say "lbd is healthy: announcing"
		elif [ "$state" != down ] && [ "$bad" -ge "$FALL" ]; then
			state=down
			say "withdrawing: $reason"
		fi
		case $state in
		up)	err=$(tell_bird enable) ;;
		down)	err=$(tell_bird disable) ;;
		*)	err="" ;;
		esac
		# One line per change of BIRD's answer, not one per interval.
		if [ "$err" != "$bird_error" ]; then
			[ -n "$err" ] && say "$err"
			[ -z "$err" ] && say "BIRD answers again"
			bird_error=$err
		fi
		sleep "$INTERVAL"
	done
}

case ${1:-loop} in
check)
	reason=$(check) && exit 0
	say "$reason"
	exit 1
	;;
drain)
	mkdir -p "$(dirname "$DRAIN_FILE")" && touch "$DRAIN_FILE" || exit 1
	say "drained: the routes go within $FALL checks of ${INTERVAL}s"
	;;
undrain)
	rm -f "$DRAIN_FILE" || exit 1
	say "undrained: announced again after $RISE good checks"
	;;
loop)
	trap 'exit 0' TERM INT
	loop
	;;
*)
	echo "usage: lbd-bird-health.sh [check|loop|drain|undrain]" >&2
	exit 2
	;;
esac

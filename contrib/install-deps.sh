#!/bin/sh
# Installs the Debian packages lbd needs to build and test, if any is missing.
set -e
pkgs="gcc make pkg-config libconfuse-dev libbsd-dev libcmocka-dev python3 python3-pytest
      socat iproute2 procps util-linux curl nginx keepalived man-db clang libclang-rt-14-dev
      valgrind postgresql redis-server redis-tools bird2 nftables haproxy openssl
      prometheus chromium"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing packages:$missing (run as root to install them)" >&2
	exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# The servers the tests start (nginx, postgresql, redis, bird, prometheus)
# are their own instances on loopback or in the tests' namespaces: keep the
# packages' system services from starting.
policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
	policy=/usr/sbin/policy-rc.d
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing
# BIRD runs only as the tests' own instances (bird -c -s -P, one per
# namespace): never as the system's daemon with /etc/bird/bird.conf, which
# would export routes into the host's kernel tables at the next boot.
case " $missing " in
*" bird2 "*)
	systemctl disable bird.service >/dev/null 2>&1 || true
	;;
esac

#!/bin/sh
# Builds the libFuzzer targets in tests/fuzz/ and runs each for a while.
#
#   tests/fuzz/run.sh [SECONDS]      default 30 seconds per target
#
# FUZZ_BUILD    build directory (default build-fuzz)
# FUZZ_TARGETS  which targets to run (default "config ctlproto proxyproto sni")
# FUZZ_CC       compiler (default clang; gcc has no libFuzzer)
#
# Each target runs alone (the machine may be shared: no -jobs/-workers) on a
# copy of its seed corpus in a temporary directory, so the corpus in the
# tree never grows.  Exits non-zero if any target crashed, leaked, timed out
# or ran out of memory; the reproducer is kept in $FUZZ_BUILD/artifacts/.
set -eu
cd "$(dirname "$0")/../.."

secs=${1:-30}
build=${FUZZ_BUILD:-build-fuzz}
targets=${FUZZ_TARGETS:-config ctlproto proxyproto sni}
cc=${FUZZ_CC:-clang}

case $secs in
''|*[!0-9]*) echo "usage: $0 [seconds]" >&2; exit 2 ;;
esac

# The lbd sources are written for gcc's -Wformat=2; clang also flags the
# vprintf wrappers in config.c and log.c, so that one stays a warning here.
# The quotes in LBD_VERSION are meant to reach the compiler.
# shellcheck disable=SC2089
cflags="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -g -O1
	-std=c11 -Wall -Wextra -Wshadow -Wformat=2 -Werror -Wno-error=format-nonliteral
	-D_GNU_SOURCE -DLBD_VERSION=\"0.1.0\" -Iinclude -Isrc"

missing() {
	echo "fuzz: $1 (install: apt-get install -y $2, or sh contrib/install-deps.sh)" >&2
	exit 1
}

check_tools() {
	command -v "$cc" >/dev/null 2>&1 || missing "$cc not found" clang
	command -v pkg-config >/dev/null 2>&1 || missing "pkg-config not found" pkg-config
	pkg-config --exists libconfuse libbsd-overlay ||
		missing "libconfuse or libbsd not found" "libconfuse-dev libbsd-dev"
	echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' |
	    "$cc" -fsanitize=fuzzer -x c -o "$build/.probe" - >/dev/null 2>&1 ||
		missing "$cc cannot link libFuzzer" libclang-rt-14-dev
	rm -f "$build/.probe"
}

# The lbd sources each target links, beside tests/fuzz/fuzz_NAME.c.
sources() {
	case $1 in
	config) echo src/config.c src/conflex.c src/confnames.c src/configpath.c src/addr.c src/balance.c src/conflisten.c src/sni.c src/sniroute.c src/cidr.c ;;
	ctlproto) echo src/ctlproto.c ;;
	proxyproto) echo src/proxyproto.c src/proxyparse.c ;;
	sni) echo src/sni.c src/sniroute.c src/cidr.c src/frontdoor.c src/proxyparse.c ;;
	*) echo "fuzz: unknown target $1" >&2; exit 2 ;;
	esac
}

# Longest input tried: a config file, a request line past the 256-byte
# limit, a v2 header with room for TLVs, a PROXY header and a large
# ClientHello (real ones are 200-600 bytes; the 16 KiB bound is unit-tested).
max_len() {
	case $1 in
	config) echo 8192 ;;
	ctlproto) echo 600 ;;
	proxyproto) echo 1024 ;;
	sni) echo 4096 ;;
	esac
}

build_target() {
	# shellcheck disable=SC2046,SC2086,SC2090
	"$cc" $cflags $(pkg-config --cflags libconfuse libbsd-overlay) \
	    -o "$build/fuzz_$1" "tests/fuzz/fuzz_$1.c" $(sources "$1") \
	    $(pkg-config --libs libconfuse libbsd-overlay) -lm -ldl
}

# Runs one target; prints its executions; returns libFuzzer's status.
run_target() {
	name=$1
	corpus=$work/corpus-$name
	log=$work/$name.log
	cp -R "tests/fuzz/corpus/$name" "$corpus"
	mkdir -p "$work/artifacts"
	rc=0
	"$build/fuzz_$name" -max_total_time="$secs" -max_len="$(max_len "$name")" \
	    -timeout=5 -rss_limit_mb=2048 -detect_leaks=1 -print_final_stats=1 \
	    -dict="tests/fuzz/$name.dict" -artifact_prefix="$work/artifacts/$name-" \
	    "$corpus" >"$log" 2>&1 || rc=$?
	runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1 runs in \2 s/p' "$log")
	edges=$(sed -n 's/^#[0-9]*.*DONE *cov: \([0-9]*\).*/\1/p' "$log" | tail -n 1)
	if [ "$rc" -eq 0 ]; then
		echo "fuzz_$name: ok, ${runs:-? runs}, ${edges:-?} edges covered"
		return 0
	fi
	echo "fuzz_$name: FAILED (exit $rc)${runs:+ after $runs}"
	grep -E '^==[0-9]+==|^SUMMARY|ERROR|Assertion|runtime error|Test unit written' \
	    "$log" | head -n 20 | sed 's/^/    /'
	mkdir -p "$build/artifacts"
	for f in "$work/artifacts/$name"-*; do
		[ -e "$f" ] || continue
		cp "$f" "$build/artifacts/"
		echo "    reproducer: $build/artifacts/$(basename "$f")" \
		    "(run: $build/fuzz_$name $build/artifacts/$(basename "$f"))"
	done
	cp "$log" "$build/artifacts/$name.log"
	echo "    full log: $build/artifacts/$name.log"
	return "$rc"
}

mkdir -p "$build"
check_tools
for t in $targets; do
	build_target "$t"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/lbd-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

failed=0
for t in $targets; do
	run_target "$t" || failed=1
done
exit $failed

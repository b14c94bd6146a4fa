"""Binary upgrade (SIGUSR2): the master executes the lbd binary on disk
again and hands its listeners, stats segment, pid file and control socket to
the new master.  Checked under load: no refused or reset connection, a long
download spanning the hand-over arrives intact, lbstat shows the new version
with the old counters and admin state; an upgrade that fails leaves the old
master serving and logging why.

lbd runs from a copy in a scratch directory, which the test replaces (by
rename, as a package manager does) with a second build of the same tree
that says another version.  The test process makes itself a child
subreaper, as systemd is, so the new master becomes its child once the old
one exits and can be reaped here.
"""

import ctypes
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

import backend as backend_mod
import lbdtest
from lbdtest import SCALE, poll_until

NEW_VERSION = "9.9.9-upgrade"
PR_SET_CHILD_SUBREAPER = 36
DOWNLOAD = 200 << 20


# -- building the second binary ----------------------------------------------

def build_new_binary(outdir):
    """The tree rebuilt with VERSION=NEW_VERSION in outdir, reusing the
    objects of the build under test: only the files that use LBD_VERSION
    are compiled again.  Returns the path of the new lbd."""
    src = lbdtest.build_dir()
    for name in os.listdir(src):
        if name.endswith(".o"):
            shutil.copy2(os.path.join(src, name), outdir)
    srcdir = os.path.join(lbdtest.REPO, "src")
    for name in os.listdir(srcdir):
        if name.endswith(".c"):
            with open(os.path.join(srcdir, name)) as f:
                if "LBD_VERSION" in f.read():
                    obj = os.path.join(outdir, name[:-2] + ".o")
                    if os.path.exists(obj):
                        os.unlink(obj)
    args = ["make", "-s", "-C", lbdtest.REPO, "BUILD=" + outdir,
            "VERSION=" + NEW_VERSION]
    if "asan" in os.path.basename(src):	# the flags of make check-asan
        args += ["CC=gcc", "CFLAGS=-O1 -g -fsanitize=address,undefined "
                 "-fno-sanitize-recover=all -fno-omit-frame-pointer",
                 "LDFLAGS=-fsanitize=address,undefined"]
    out = subprocess.run(args + [os.path.join(outdir, "lbd")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, "building the new lbd failed:\n%s%s" % (
        out.stdout, out.stderr)
    path = os.path.join(outdir, "lbd")
    v = subprocess.run([path, "-V"], capture_output=True, text=True)
    assert v.stdout.strip() == "lbd " + NEW_VERSION
    return path


def replace_file(src, dst):
    """Puts a copy of src at dst by rename, as install(1) and dpkg do: the
    running binary's inode is left alone."""
    tmp = dst + ".new"
    shutil.copy2(src, tmp)
    os.chmod(tmp, 0o755)
    os.replace(tmp, dst)


# -- an lbd whose master changes ---------------------------------------------

def subreaper(on):
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0, 0, 0, 0) == 0


class Upgradable:
    """lbd -d started from a copy of the binary in workdir; .pid follows the
    pid file, so it names the new master after an upgrade."""

    def __init__(self, workdir, services, grace="30s", foreground=True):
        self.workdir = workdir
        self.foreground = foreground
        os.chmod(workdir, 0o755)
        self.binary = os.path.join(workdir, "lbd")
        shutil.copy2(os.path.join(lbdtest.build_dir(), "lbd"), self.binary)
        self.runtime_dir = os.path.join(workdir, "run")
        self.conf_path = os.path.join(workdir, "lbd.conf")
        self.pid_path = os.path.join(self.runtime_dir, "lbd.pid")
        self.stderr_path = os.path.join(workdir, "lbd.stderr")
        self.ports = {s["name"]: lbdtest.free_port() for s in services}
        self.port = self.ports[services[0]["name"]]
        svcs = [dict(s, listen=["127.0.0.1:%d" % self.ports[s["name"]]])
                for s in services]
        self.conf_text = lbdtest.render_config(
            self.runtime_dir, svcs, 2, {"shutdown-grace": lbdtest.q(grace)})
        with open(self.conf_path, "w") as f:
            f.write(self.conf_text)
        self.masters = []		# every master pid seen, first the one started

    def start(self):
        with open(self.stderr_path, "ab") as err:
            # as a daemon, from a relative path: daemon() moves to "/", so
            # the path to execute again must have been made absolute
            self.proc = subprocess.Popen(
                ([self.binary, "-d"] if self.foreground else ["./lbd"])
                + ["-f", self.conf_path], cwd=self.workdir,
                stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        if not self.foreground:	# daemon(): the master is a grandchild
            assert self.proc.wait(10 * SCALE) == 0, self.describe()
        assert poll_until(lambda: self.pidfile() != 0, 10 * SCALE), \
            self.describe()
        self.pid = self.pidfile()
        self.masters.append(self.pid)
        assert poll_until(lambda: all(lbdtest.listening(self.pid, p)
                                      for p in self.ports.values()),
                          10 * SCALE), self.describe()
        assert poll_until(lambda: len(self.workers(self.pid)) == 2,
                          10 * SCALE), self.describe()

    def pidfile(self):
        try:
            with open(self.pid_path) as f:
                return int(f.read().strip() or 0)
        except (OSError, ValueError):
            return 0

    def workers(self, master):
        return [pid for pid, _ in lbdtest.children(master)
                if re.match(r"lbd: worker \d+", lbdtest.proc_title(pid) or "")]

    def stderr(self):
        with open(self.stderr_path, errors="replace") as f:
            return f.read()

    def describe(self):
        return "--- %s ---\n%s--- lbd stderr ---\n%s" % (
            self.conf_path, self.conf_text, self.stderr()[-6000:])

    def lbstat(self):
        out = subprocess.run(
            [os.path.join(lbdtest.build_dir(), "lbstat"), "-j", "-s",
             os.path.join(self.runtime_dir, "lbd.stats")],
            capture_output=True, text=True, timeout=10)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def lbadmin(self, *args):
        return subprocess.run(
            [os.path.join(lbdtest.build_dir(), "lbadmin"), "-s",
             os.path.join(self.runtime_dir, "lbd.sock")] + list(args),
            capture_output=True, text=True, timeout=20 * SCALE)

    def reap(self, pid, timeout):
        """Waits for pid (the first master, or one reparented to us)."""
        if pid == self.proc.pid and self.foreground:
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return 0 if lbdtest.is_dead(pid) else None
            if done == pid:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.02)
        return None

    def finish(self):
        """SIGTERM to the current master; every master and worker seen must
        be gone in time.  Returns the problems found."""
        problems = []
        workers = set()
        for m in self.masters:
            workers.update(self.workers(m))
        for m in reversed(self.masters):
            if not lbdtest.is_dead(m):
                os.kill(m, signal.SIGTERM)
            if self.reap(m, 15 * SCALE) is None and not lbdtest.is_dead(m):
                problems.append("master %d ignored SIGTERM" % m)
                os.kill(m, signal.SIGKILL)
                self.reap(m, 5)
        for w in workers:
            if not poll_until(lambda: lbdtest.is_dead(w), 3 * SCALE):
                problems.append("worker %d outlived its master" % w)
                os.kill(w, signal.SIGKILL)
        text = self.stderr()
        problems += ["sanitizer report: %s" % p
                     for p in lbdtest.SANITIZER_PATTERNS if p in text]
        return problems


@pytest.fixture
def upgradable(tmp_path):
    subreaper(True)
    made = []

    def make(services, grace="30s", foreground=True):
        workdir = str(tmp_path / ("lbd%d" % len(made)))
        os.makedirs(workdir)
        made.append(Upgradable(workdir, services, grace, foreground))
        made[-1].start()
        return made[-1]

    yield make
    problems = [p for u in made for p in u.finish()]
    subreaper(False)
    if problems:
        pytest.fail("\n".join(problems) + "\n" + made[0].describe(),
                    pytrace=False)


# -- clients -------------------------------------------------------------------

class ShortClients(threading.Thread):
    """Short connections in a loop for a bounded time: each must get a
    backend's name line and its echo.  Refusals, resets and timeouts are
    kept with their time."""

    def __init__(self, port, seconds):
        super().__init__(daemon=True)
        self.port, self.seconds = port, seconds
        self.ok = []			# completion times
        self.errors = []

    def run(self):
        deadline = time.monotonic() + self.seconds
        while time.monotonic() < deadline and len(self.ok) < 200000:
            try:
                lbdtest.ident(self.port, timeout=5 * SCALE)
                self.ok.append(time.monotonic())
            except (OSError, AssertionError, EOFError) as e:
                self.errors.append((time.monotonic(), repr(e)))


def expected_sha(seed, n):
    h = hashlib.sha256()
    base = backend_mod._base_pattern(seed)
    index = 0
    while n > 0:
        block = backend_mod.stream_block(seed, index, base)[:n]
        h.update(block)
        n -= len(block)
        index += 1
    return h.hexdigest()


class Download(threading.Thread):
    """Reads DOWNLOAD bytes through lbd at a bounded pace (about 40 MiB/s),
    so it spans the hand-over; .sha and .done_at when it ends."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.got = 0
        self.sha = None
        self.error = None
        self.done_at = None

    def run(self):
        h = hashlib.sha256()
        deadline = time.monotonic() + 60 * SCALE
        try:
            s = lbdtest.connect(self.port, timeout=10 * SCALE)
            while time.monotonic() < deadline:
                d = s.recv(1 << 20)
                if not d:
                    break
                h.update(d)
                self.got += len(d)
                time.sleep(len(d) / (40 << 20))
            s.close()
        except OSError as e:
            self.error = repr(e)
        self.sha = h.hexdigest()
        self.done_at = time.monotonic()


# -- tests ---------------------------------------------------------------------

def test_upgrade_under_load(upgradable, backend, tmp_path):
    newbin = build_new_binary(str(tmp_path))
    a1, a2 = backend("ident", "a1"), backend("ident", "a2")
    src = backend("source", DOWNLOAD, "upgrade")
    # two services: two listeners to hand over
    lbd = upgradable([lbdtest.service("web", [a1, a2]),
                      lbdtest.service("dl", [src])])
    first = lbd.pid
    assert lbd.lbadmin("drain", "web/a2").returncode == 0
    for _ in range(50):
        assert lbdtest.ident(lbd.port) == "a1"
    before = lbd.lbstat()
    assert before["version"] == lbdtest.version()
    accepted_before = before["services"][0]["accepted"]
    assert accepted_before == 50

    dl = Download(lbd.ports["dl"])
    dl.start()
    assert poll_until(lambda: dl.got > (8 << 20), 10 * SCALE), dl.error
    clients = [ShortClients(lbd.port, 5.0 * SCALE) for _ in range(2)]
    for c in clients:
        c.start()
    time.sleep(1.0)
    replace_file(newbin, lbd.binary)
    t0 = time.monotonic()
    got_at_signal = dl.got
    os.kill(first, signal.SIGUSR2)
    assert poll_until(lambda: lbd.pidfile() not in (0, first), 10 * SCALE,
                      step=0.002), lbd.describe()
    took = time.monotonic() - t0
    new = lbd.pidfile()
    lbd.masters.append(new)
    for c in clients:
        c.join(30 * SCALE)
    dl.join(90 * SCALE)
    # the old master waited for its download, then went
    assert lbd.reap(first, 40 * SCALE) == 0, lbd.describe()

    errors = [e for c in clients for e in c.errors]
    around = sum(1 for c in clients for t in c.ok if t0 - 1 <= t <= t0 + 1)
    total = sum(len(c.ok) for c in clients)
    print("\nupgrade: pid file names the new master %.1f ms after SIGUSR2; "
          "%d connections in the 2 s around it, %d in all, %d failed; "
          "download %d MiB, %d MiB of it after the signal"
          % (took * 1000, around, total, len(errors), dl.got >> 20,
             (dl.got - got_at_signal) >> 20))
    assert not errors, errors[:5]
    assert around > 0
    assert dl.error is None, dl.error
    assert got_at_signal < DOWNLOAD and dl.done_at > t0 + took
    assert dl.got == DOWNLOAD
    assert dl.sha == expected_sha("upgrade", DOWNLOAD)

    # the old workers' rows are folded once they are gone
    assert poll_until(lambda: len(lbd.lbstat()["workers"]) == 2, 10 * SCALE)
    after = lbd.lbstat()
    assert after["version"] == NEW_VERSION
    assert after["pid"] == new
    web = after["services"][0]
    state = {b["name"]: b["state"] for b in web["backends"]}
    assert state == {"a1": "up", "a2": "drain"}, state
    # every connection counted once: before, during and after the hand-over
    assert web["accepted"] == accepted_before + total, (web, total)
    assert after["services"][1]["accepted"] == 1
    # the control socket is the new master's
    show = lbd.lbadmin("show", "web/a2")
    assert show.returncode == 0 and "drain" in show.stdout, show
    assert "upgrade: took over from pid %d" % first in lbd.stderr()


def test_failed_upgrades_keep_the_old_master(upgradable, backend, tmp_path):
    """A binary that exits at once, then a configuration the new binary
    rejects: each time the old master logs why and serves on, with its pid
    file and control socket; then a good upgrade still works."""
    newbin = build_new_binary(str(tmp_path))
    a1 = backend("ident", "a1")
    lbd = upgradable([lbdtest.service("web", [a1])], grace="5s")
    first = lbd.pid
    sock = os.path.join(lbd.runtime_dir, "lbd.sock")

    def still_serving():
        assert lbd.pidfile() == first
        assert not lbdtest.is_dead(first)
        assert lbdtest.ident(lbd.port) == "a1"
        assert lbd.lbadmin("show").returncode == 0
        assert lbd.lbstat()["pid"] == first
        assert lbd.lbstat()["version"] == lbdtest.version()

    broken = os.path.join(str(tmp_path), "broken")
    with open(broken, "w") as f:
        f.write("#!/bin/sh\nexit 1\n")
    os.chmod(broken, 0o755)
    replace_file(broken, lbd.binary)
    os.kill(first, signal.SIGUSR2)
    assert poll_until(lambda: re.search(
        r"upgrade failed: the new master \(pid \d+\) exited with status 1; "
        r"still running version", lbd.stderr()), 10 * SCALE), lbd.describe()
    still_serving()

    replace_file(newbin, lbd.binary)
    good_conf = lbd.conf_text
    with open(lbd.conf_path, "w") as f:
        f.write(good_conf + "no-such-key = 1\n")
    os.kill(first, signal.SIGUSR2)
    assert poll_until(lambda: lbd.stderr().count("upgrade failed") == 2,
                      10 * SCALE), lbd.describe()
    # the new master said why, as "file:line:", in the same log
    assert re.search(r"lbd\.conf:\d+:.*no-such-key", lbd.stderr()), \
        lbd.describe()
    still_serving()
    assert os.path.exists(sock)

    with open(lbd.conf_path, "w") as f:
        f.write(good_conf)
    os.kill(first, signal.SIGUSR2)
    assert poll_until(lambda: lbd.pidfile() not in (0, first), 10 * SCALE), \
        lbd.describe()
    lbd.masters.append(lbd.pidfile())
    assert lbd.reap(first, 20 * SCALE) == 0, lbd.describe()
    assert lbdtest.ident(lbd.port) == "a1"
    assert lbd.lbstat()["version"] == NEW_VERSION
    assert lbd.lbadmin("show").returncode == 0


def test_daemonised_master_hears_signals(upgradable, backend, tmp_path):
    """Without -d, started as ./lbd: the master that daemon() forked must
    still see SIGHUP, SIGUSR2 and SIGTERM (epoll only reports a signalfd's
    signals to the process that added it), find the binary again from "/",
    and remove its socket and pid file at exit."""
    newbin = build_new_binary(str(tmp_path))
    a1 = backend("ident", "a1")
    lbd = upgradable([lbdtest.service("web", [a1])], grace="5s",
                     foreground=False)
    first = lbd.pid
    os.kill(first, signal.SIGHUP)
    assert poll_until(lambda: lbd.lbstat()["reloads"] == 1, 10 * SCALE)
    replace_file(newbin, lbd.binary)
    os.kill(first, signal.SIGUSR2)
    assert poll_until(lambda: lbd.pidfile() not in (0, first), 10 * SCALE)
    new = lbd.pidfile()
    lbd.masters.append(new)
    assert lbd.reap(first, 20 * SCALE) == 0
    assert lbdtest.ident(lbd.port) == "a1"
    assert lbd.lbstat()["version"] == NEW_VERSION
    os.kill(new, signal.SIGTERM)
    assert lbd.reap(new, 20 * SCALE) == 0
    assert not os.path.exists(lbd.pid_path)
    assert not os.path.exists(os.path.join(lbd.runtime_dir, "lbd.sock"))


def test_upgrade_to_another_stats_layout(upgradable, backend, tmp_path):
    """A new binary whose segment layout differs (simulated by changing the
    version field of the running one's file) starts a fresh segment, says
    so, and serves; admin state still carries over through lbd.state."""
    newbin = build_new_binary(str(tmp_path))
    a1, a2 = backend("ident", "a1"), backend("ident", "a2")
    lbd = upgradable([lbdtest.service("web", [a1, a2])], grace="5s")
    first = lbd.pid
    assert lbd.lbadmin("drain", "web/a2").returncode == 0
    for _ in range(10):
        assert lbdtest.ident(lbd.port) == "a1"
    stats = os.path.join(lbd.runtime_dir, "lbd.stats")
    with open(stats, "r+b") as f:		# header: u64 magic, u32 version
        f.seek(8)
        version = int.from_bytes(f.read(4), "little")
        f.seek(8)
        f.write((version + 1000).to_bytes(4, "little"))
    replace_file(newbin, lbd.binary)
    os.kill(first, signal.SIGUSR2)
    assert poll_until(lambda: lbd.pidfile() not in (0, first), 10 * SCALE), \
        lbd.describe()
    lbd.masters.append(lbd.pidfile())
    assert "starting a fresh stats segment" in lbd.stderr()
    assert lbd.reap(first, 20 * SCALE) == 0, lbd.describe()
    for _ in range(5):
        assert lbdtest.ident(lbd.port) == "a1"
    after = lbd.lbstat()
    assert after["version"] == NEW_VERSION
    web = after["services"][0]
    assert web["accepted"] == 5, web		# counted afresh
    assert {b["name"]: b["state"] for b in web["backends"]}["a2"] == "drain"

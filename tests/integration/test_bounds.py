"""Nothing waits forever (issue 20): workers orphaned by a killed master are
bounded by shutdown-grace while a new lbd serves at once, and a hung worker
is replaced by the master's watchdog while an idle one is left alone.
Every wait is bounded; run with -s to see the measured figures.
"""

import os
import signal
import socket
import time

import pytest

import faults_util as fu
import lbdtest
from lbdtest import SCALE, service


@pytest.fixture
def flbd(tmp_path, lbd_bin):
    def make(i, services, workers=2, **globals_):
        return fu.FaultLbd(tmp_path / ("flbd%d" % i), services,
                           workers=workers,
                           globals_=lbdtest.globals_from(globals_))

    yield from lbdtest.lbd_fixture(make)




def alive(pid):
    st = lbdtest.proc_stat(pid)
    return st is not None and st[0] != "Z"


def served_by(port, pids, timeout=2.0):
    """Opens a connection, reads a few bytes; returns the pid of the worker
    holding it (one of pids) or None."""
    s = lbdtest.connect(port, timeout=timeout)
    try:
        s.settimeout(timeout)
        if not s.recv(1):
            return None
        inode = lbdtest.server_inode(s)
        for pid in pids:
            if inode in lbdtest.socket_inodes(pid):
                return pid
        return None
    finally:
        s.close()


# -- orphaned workers --------------------------------------------------------

def test_orphans_bounded_and_new_lbd_serves(tmp_path, flbd, slow_source):
    """kill -9 the master during a long download: its workers close their
    listener copies at once and cut what is left at shutdown-grace; a new
    lbd on the same config and runtime-dir starts and serves meanwhile."""
    src = slow_source("slow", 7, interval_ms=100)
    grace = 2.0
    d = flbd([service("web", [(src.name, src.address)])], workers=2,
             shutdown_grace="2s")
    port = d.port["web"]
    old = set(d.workers())
    dl = lbdtest.connect(port)
    dl.settimeout(5.0)
    got = len(lbdtest.recv_exact(dl, 4096))
    os.kill(d.pid, signal.SIGKILL)
    t0 = time.monotonic()
    assert d.wait(5.0) is not None
    d2 = fu.FaultLbd(tmp_path / "second", d.services, workers=2,
                     globals_=d.globals)
    d2.runtime_dir = d.runtime_dir
    d2.listen_for = lambda svc: (port, ["127.0.0.1:%d" % port])
    d2.START_TRIES = 1
    try:
        d2.start(5.0)
        started = time.monotonic() - t0
        new = set(d2.workers())
        owners = [served_by(port, new) for _ in range(10)]
        assert all(o in new for o in owners), \
            "connections not served by the new lbd: %s" % owners
        # The old download keeps flowing until shutdown-grace, then ends.
        dl.settimeout(0.5)
        end = None
        deadline = t0 + grace + 2.0 * SCALE
        while time.monotonic() < deadline:
            try:
                data = dl.recv(65536)
            except socket.timeout:
                continue
            except ConnectionError:
                end = "reset"
                break
            if not data:
                end = "eof"
                break
            got += len(data)
        cut = time.monotonic() - t0
        assert end is not None, "the orphaned download still runs %.1fs " \
            "after the master died (shutdown-grace 2s)" % cut
        assert cut >= grace - 0.2, "download cut after %.2fs, before " \
            "shutdown-grace" % cut
        assert lbdtest.poll_until(lambda: not any(alive(p) for p in old),
                                  1.0 * SCALE, 0.02), \
            "orphaned workers %s still run" % [p for p in old if alive(p)]
        gone = time.monotonic() - t0
        print("new lbd serving %.2fs after kill -9; orphaned download "
              "(%d bytes) cut at %.2fs; orphans gone by %.2fs "
              "(shutdown-grace 2s)" % (started, got, cut, gone))
        assert "master (pid %d) gone" % d.pid in d.stderr(), d.stderr()
    finally:
        dl.close()
        problems = d2.finish()
    assert not problems, problems


# -- the worker watchdog -----------------------------------------------------

def ident_ok(port, name, timeout=2.0):
    try:
        return lbdtest.ident(port, timeout=timeout) == name
    except (OSError, EOFError):
        return False


def test_stalled_worker_is_replaced(flbd, backend):
    """SIGSTOP a worker holding connections: within worker-stall + 1s it is
    logged, killed and replaced, and new connections are all served."""
    b = backend("ident", "wd")
    d = flbd([service("web", [b])], workers=2, worker_stall="1s")
    port = d.port["web"]
    socks, victim = [], None
    try:
        for _ in range(20):
            s = lbdtest.connect(port)
            assert lbdtest.recv_line(s) == b"wd\n"
            socks.append(s)
        owners = [d.owner_of(s) for s in socks]
        victim = max(set(owners), key=owners.count)
        os.kill(victim, signal.SIGSTOP)
        t0 = time.monotonic()
        assert lbdtest.poll_until(
            lambda: not alive(victim) and len(d.workers()) == 2, 3.0 * SCALE,
            0.01), "stopped worker %d not replaced after %.1fs (worker-stall " \
            "1s)\n%s" % (victim, time.monotonic() - t0, d.describe())
        took = time.monotonic() - t0
        print("stopped worker replaced %.2fs after SIGSTOP (worker-stall 1s)"
              % took)
        assert took <= 1.0 + 1.0 * SCALE, "replaced after %.2fs" % took
        err = d.stderr()
        assert "(pid %d) stalled for " % victim in err, err
        assert err.count("(pid %d) stalled for " % victim) == 1, err
        assert all(ident_ok(port, "wd") for _ in range(40)), \
            "a new connection failed after the replacement"
        js = fu.lbstat(d)
        assert js["worker_restarts"] == 1, js
        assert {w["state"] for w in js["workers"]} == {"running"}, js
        # The killed worker's counts are folded in, as for any dead worker.
        (svc,) = [x for x in js["services"] if x["name"] == "web"]
        assert svc["accepted"] == 60, svc
        assert svc["backends"][0]["connections"] == 60, svc
    finally:
        if victim is not None and alive(victim):
            os.kill(victim, signal.SIGCONT)
        fu.close_all(socks)


def test_idle_worker_is_never_stalled(flbd, backend):
    """Workers with nothing to do for four times worker-stall are left
    alone: their loop still turns, so their heartbeat stays young."""
    b = backend("ident", "idle")
    d = flbd([service("web", [b])], workers=2, worker_stall="1s")
    before = set(d.workers())
    ages = []
    for _ in range(8):
        time.sleep(0.5)
        ages += [w["heartbeat_age_ms"] for w in fu.lbstat(d)["workers"]]
    assert set(d.workers()) == before, d.describe()
    assert "stalled" not in d.stderr(), d.stderr()
    js = fu.lbstat(d)
    assert js["worker_restarts"] == 0, js
    print("idle workers' heartbeat ages over 4s: max %dms (worker-stall 1s)"
          % max(ages))
    assert max(ages) < 1000, ages
    assert ident_ok(d.port["web"], "idle")


# -- hostile input -----------------------------------------------------------

def test_full_runtime_dir_fails_startup(tmp_path, backend):
    """A runtime-dir with no room for the stats segment (a 64 KiB tmpfs):
    lbd refuses to start with a clear message and status 1, instead of
    dying of SIGBUS on the first page it touches."""
    import subprocess
    b = backend("ident", "full")
    d = fu.FaultLbd(tmp_path / "full", [service("web", [b])], workers=1)
    os.makedirs(d.runtime_dir)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=755",
                        "tmpfs", d.runtime_dir], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN): "
                    + r.stderr.strip())
    try:
        with pytest.raises(lbdtest.LbdFailed):
            d.start(5.0)
        assert d.proc.returncode == 1, "lbd ended with %s\n%s" % (
            d.proc.returncode, d.describe())
        err = d.stderr()
        assert "stats segment" in err and "No space left on device" in err, err
        assert not os.path.exists(os.path.join(d.runtime_dir, "lbd.stats.new"))
    finally:
        subprocess.run(["umount", d.runtime_dir], capture_output=True)
        problems = d.finish()
    assert not problems, problems


def test_check_age_and_stale_checks(flbd, backend):
    """JSON gives the age of the last check; with the master stopped (no
    checks) the check goes stale after three intervals, in JSON and in the
    table."""
    b = backend("ident", "age")
    d = flbd([dict(service("web", [b]), health={
        "interval": lbdtest.q("200ms"), "timeout": lbdtest.q("150ms")})],
        workers=1)

    def check():
        (s,) = [s for s in fu.lbstat(d)["services"] if s["name"] == "web"]
        return s["backends"][0]["check"]

    assert lbdtest.poll_until(lambda: check()["status"] == "ok", 5 * SCALE)
    c = check()
    assert c["age_s"] is not None and 0 <= c["age_s"] < 0.6 and not c["stale"], c
    os.kill(d.pid, signal.SIGSTOP)
    try:
        time.sleep(1.0)
        c = check()
        assert c["stale"] and c["age_s"] >= 0.9, c
        table = subprocess_lbstat_table(d)
        assert "(stale " in table, table
    finally:
        os.kill(d.pid, signal.SIGCONT)
    assert lbdtest.poll_until(lambda: not check()["stale"], 3 * SCALE)


def subprocess_lbstat_table(d):
    import subprocess
    env = dict(os.environ)
    env.pop("LBD_CONF", None)
    r = subprocess.run([os.path.join(lbdtest.build_dir(), "lbstat"), "-s",
                        os.path.join(d.runtime_dir, "lbd.stats")], env=env,
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_admin_group_as_supplementary_group(flbd, backend):
    """The control socket admits a client whose own supplementary groups
    hold admin-group (SO_PEERGROUPS), though the group database does not
    list its user there; without that group it is refused."""
    import grp
    import shutil
    import subprocess
    if os.geteuid() != 0:
        pytest.skip("needs root to run a client with chosen groups")
    if not shutil.which("setpriv"):
        pytest.skip("needs setpriv (util-linux)")
    b = backend("ident", "grp")
    d = flbd([service("web", [b])], workers=1)
    admin_gid = grp.getgrnam(lbdtest.identity()[2]).gr_gid
    nobody = 65534
    assert nobody not in [admin_gid]
    assert "nobody" not in grp.getgrgid(admin_gid).gr_mem
    binary = os.path.join(d.workdir, "lbadmin")
    shutil.copy(os.path.join(lbdtest.build_dir(), "lbadmin"), binary)
    os.chmod(binary, 0o755)
    sock = os.path.join(d.runtime_dir, "lbd.sock")

    def show(groups):
        cmd = ["setpriv", "--reuid=%d" % nobody, "--regid=%d" % nobody]
        cmd += ["--groups=%s" % groups] if groups else ["--clear-groups"]
        r = subprocess.run(cmd + [binary, "-s", sock, "show"],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=20 * SCALE)
        return r.returncode, r.stdout, r.stderr

    rc, out, err = show(str(admin_gid))
    assert rc == 0 and "web/grp" in out, (rc, out, err, d.stderr())
    # Without the group: the file mode would refuse first; open it so that
    # admission itself is what refuses.
    os.chmod(sock, 0o666)
    try:
        rc, out, err = show(None)
    finally:
        os.chmod(sock, 0o660)
    assert (rc, err) == (1, "lbadmin: permission denied\n"), (rc, out, err)
    assert "refused uid %d" % nobody in d.stderr()

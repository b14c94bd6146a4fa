"""Integration tests for lbadmin and the control socket: drain (with -w),
disable, enable, weight, show and reload against a real lbd over loopback;
admin state surviving a killed worker, a reload and a restart; garbage on
the socket; admission by file mode and SO_PEERCRED.
"""

import collections
import os
import shutil
import signal
import socket
import stat
import subprocess
import time

import pytest

import lbdtest
from lbdtest import SCALE, ident, service

NOBODY = 65534


def lbadmin_bin():
    path = os.path.join(lbdtest.build_dir(), "lbadmin")
    if not os.access(path, os.X_OK):
        pytest.fail("no lbadmin binary at %s" % path)
    return path


def lbadmin(d, *args, timeout=20, prefix=(), binary=None, sock=None):
    """Runs lbadmin against d (through its config, or sock); returns
    (exit status, stdout, stderr)."""
    where = ["-s", sock] if sock else ["-f", d.conf_path]
    cmd = list(prefix) + [binary or lbadmin_bin()] + where + list(args)
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout * SCALE, text=True)
    return p.returncode, p.stdout, p.stderr


def ok(d, *args):
    rc, out, err = lbadmin(d, *args)
    assert rc == 0, "lbadmin %s: exit %d\n%s%s\n%s" % (
        " ".join(args), rc, out, err, d.describe())
    assert err == "", err
    return out


def show(d, target=""):
    """{name: (state, weight, active)} from lbadmin show."""
    out = ok(d, "show", *([target] if target else []))
    lines = out.splitlines()
    assert lines[0].split() == ["SERVICE/BACKEND", "STATE", "WEIGHT", "ACTIVE"]
    rows = {}
    for line in lines[1:]:
        name, state, weight, active = line.split()
        rows[name] = (state, int(weight), int(active))
    return rows


def sock_path(d):
    return os.path.join(d.runtime_dir, "lbd.sock")


def picks(d, n, svc="web"):
    return collections.Counter(ident(d.port[svc], payload=None)
                               for _ in range(n))


def hold_on(d, name, tries=20, svc="web"):
    """An open connection relayed to backend name (others are closed)."""
    for _ in range(tries):
        s = lbdtest.connect(d.port[svc])
        got = lbdtest.recv_line(s)
        if got == (name + "\n").encode():
            return s
        s.close()
    raise AssertionError("no connection reached %s in %d tries" % (name, tries))


def echo(s, payload=b"still here\n"):
    s.sendall(payload)
    assert lbdtest.recv_exact(s, len(payload)) == payload


def two_backends(lbd, backend, w1=1, w2=1, **options):
    a = backend("ident", "app1")
    b = backend("ident", "app2")
    d = lbd([service("web", [(a.name, a.address, w1), (b.name, b.address, w2)],
                     **options)], workers=2)
    return d, a, b


def control(d, data, shutdown=True, timeout=5.0):
    """Raw bytes to the control socket; the reply until lbd closes or goes
    quiet for a moment."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout * SCALE)
    s.connect(sock_path(d))
    out = bytearray()
    try:
        try:
            s.sendall(data)
            if shutdown:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
    finally:
        s.close()
    return bytes(out)


def wait_reloaded(d, old_workers):
    """Waits until none of old_workers serves and a full new set runs."""
    def done():
        ws = set(d.workers())
        return len(ws) == d.workers_wanted and not ws & set(old_workers)
    assert lbdtest.poll_until(done, 10 * SCALE), d.describe()


# -- show --------------------------------------------------------------------

def test_show(lbd, backend):
    d, a, b = two_backends(lbd, backend, w1=1, w2=3)
    rows = show(d)
    assert rows == {"web/app1": ("up", 1, 0), "web/app2": ("up", 3, 0)}
    held = hold_on(d, "app2")
    try:
        assert lbdtest.poll_until(lambda: show(d, "web/app2")["web/app2"][2] == 1,
                                  5 * SCALE)
        assert list(show(d, "web/app2")) == ["web/app2"]
        assert list(show(d, "web")) == ["web/app1", "web/app2"]
        # The same through the raw protocol (what socat users see).
        reply = control(d, b"show web\n").decode()
        assert reply == "ok\nweb/app1 up 1 0\nweb/app2 up 3 1\n.\n", reply
    finally:
        held.close()
    out = ok(d, "show")
    print(out)
    # A table: columns line up.
    lines = out.splitlines()
    assert len({l.index(l.split()[1]) for l in lines}) == 1, out


def test_socket_mode_and_state_file(lbd, backend):
    d, a, b = two_backends(lbd, backend)
    st = os.stat(sock_path(d))
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
    assert st.st_gid == os.getegid() if os.geteuid() else st.st_gid == 0
    ok(d, "drain", "web/app1")
    ok(d, "weight", "web/app2", "5")
    with open(os.path.join(d.runtime_dir, "lbd.state")) as f:
        lines = [l.split() for l in f if not l.startswith("#")]
    assert sorted(lines) == [["web", "app1", "drain", "-"],
                             ["web", "app2", "none", "5"]], lines
    ok(d, "enable", "web/app1")
    with open(os.path.join(d.runtime_dir, "lbd.state")) as f:
        lines = [l.split() for l in f if not l.startswith("#")]
    assert lines == [["web", "app2", "none", "5"]], lines


# -- drain -------------------------------------------------------------------

def test_drain_keeps_open_connections(lbd, backend):
    d, a, b = two_backends(lbd, backend)
    held = hold_on(d, "app1")
    try:
        assert ok(d, "drain", "web/app1") == ""
        assert show(d)["web/app1"] == ("drain", 1, 1)
        assert picks(d, 12) == {"app2": 12}
        echo(held)			# the old connection still relays
        assert "web/app1: drain (by uid %d" % os.geteuid() in d.stderr()
        ok(d, "enable", "web/app1")
        assert show(d)["web/app1"][0] == "up"
        assert picks(d, 12) == {"app1": 6, "app2": 6}
        echo(held)
    finally:
        held.close()


def test_drain_wait(lbd, backend):
    d, a, b = two_backends(lbd, backend)
    held = hold_on(d, "app1")
    try:
        t0 = time.monotonic()
        rc, out, err = lbadmin(d, "drain", "-w", "2", "web/app1")
        dt = time.monotonic() - t0
        assert rc == 1, (rc, out, err)
        assert out == "web/app1: 1 active\n", out
        assert err == "lbadmin: web/app1: still 1 active after 2 s\n", err
        assert 1.9 <= dt <= 2 + 3 * SCALE, dt
        # Closed half a second into a longer wait: done soon after.
        p = subprocess.Popen([lbadmin_bin(), "-f", d.conf_path, "drain", "-w",
                              "20", "web/app1"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        held.close()
        t_close = time.monotonic()
        out, err = p.communicate(timeout=20 * SCALE)
        waited = time.monotonic() - t_close
        print("drain -w returned %.2fs after the last connection closed"
              % waited)
        assert p.returncode == 0, (out, err)
        assert out.splitlines()[0] == "web/app1: 1 active", out
        assert out.splitlines()[-1] == "web/app1: drained", out
        assert waited < 1.5 * SCALE, waited
    finally:
        held.close()
    # Nothing to wait for: returns at once, quietly.
    rc, out, err = lbadmin(d, "drain", "-w", "5", "web/app1")
    assert (rc, out, err) == (0, "", "")


def test_drain_survives_worker_kill_reload_restart(lbd, backend):
    d, a, b = two_backends(lbd, backend)
    ok(d, "drain", "web/app1")
    ok(d, "weight", "web/app2", "7")

    def still_drained(when):
        rows = show(d)
        assert rows["web/app1"][0] == "drain", (when, rows)
        assert rows["web/app2"][:2] == ("up", 7), (when, rows)
        assert picks(d, 8) == {"app2": 8}, when

    victim = next(iter(d.workers()))
    os.kill(victim, signal.SIGKILL)
    assert lbdtest.poll_until(lambda: len(d.workers()) == 2 and
                              victim not in d.workers(), 5 * SCALE)
    still_drained("after a killed worker")

    old = list(d.workers())
    d.signal(signal.SIGHUP)
    wait_reloaded(d, old)
    still_drained("after a reload")

    # Restart: stop, start again on the same runtime-dir.
    d.workers()
    d.signal(signal.SIGTERM)
    assert d.wait(15 * SCALE) == 0, d.describe()
    assert d.sanitizer_reports() == []
    assert not os.path.exists(sock_path(d))
    assert os.path.exists(os.path.join(d.runtime_dir, "lbd.state"))
    d.start()
    still_drained("after a restart")
    assert "restored from" in d.stderr()


def test_reload_command(lbd, backend):
    d, a, b = two_backends(lbd, backend)
    ok(d, "disable", "web/app2")
    old = list(d.workers())
    rc, out, err = lbadmin(d, "reload")
    assert (rc, err) == (0, ""), (rc, out, err)
    wait_reloaded(d, old)
    assert show(d)["web/app2"][0] == "disabled"
    assert "reload requested (by uid %d" % os.geteuid() in d.stderr()


# -- disable, enable, weight ---------------------------------------------------

def test_disable_enable(lbd, backend):
    d, a, b = two_backends(lbd, backend)
    ok(d, "disable", "web/app1")
    assert show(d)["web/app1"][0] == "disabled"
    assert picks(d, 10) == {"app2": 10}
    # Disabled beats drain; drain of a disabled backend makes it drain.
    ok(d, "drain", "web/app1")
    assert show(d)["web/app1"][0] == "drain"
    ok(d, "disable", "web/app1")
    ok(d, "enable", "web/app1")
    assert show(d)["web/app1"] == ("up", 1, 0)
    assert picks(d, 10) == {"app1": 5, "app2": 5}
    # enable is idempotent
    ok(d, "enable", "web/app1")


def test_weight(lbd, backend):
    d, a, b = two_backends(lbd, backend)
    ok(d, "weight", "web/app1", "0")
    assert show(d)["web/app1"] == ("up", 0, 0)
    assert picks(d, 10) == {"app2": 10}
    ok(d, "weight", "web/app1", "3")
    counts = picks(d, 40)
    print("weights 3:1 over 40: %s" % dict(counts))
    assert abs(counts["app1"] - 30) <= 2 and abs(counts["app2"] - 10) <= 2, counts
    # A reload keeps the weight lbadmin set over the configured one.
    old = list(d.workers())
    d.signal(signal.SIGHUP)
    wait_reloaded(d, old)
    assert show(d)["web/app1"][1] == 3
    for bad in ("257", "-1", "x", "1.5"):
        rc, out, err = lbadmin(d, "weight", "web/app1", bad)
        assert rc == 2 and err.startswith("lbadmin: weight '%s'" % bad), (bad, err)


# -- errors ------------------------------------------------------------------

def test_errors(lbd, backend, tmp_path):
    d, a, b = two_backends(lbd, backend)
    rc, out, err = lbadmin(d, "drain", "web/app9")
    assert (rc, out, err) == (1, "", "lbadmin: web/app9: no such backend\n")
    rc, out, err = lbadmin(d, "show", "nope")
    assert (rc, err) == (1, "lbadmin: nope: no such service\n")
    rc, out, err = lbadmin(d, "frobnicate", "web/app1")
    assert rc == 2 and "unknown command 'frobnicate'" in err, err
    rc, out, err = lbadmin(d, "drain")
    assert rc == 2 and "usage: drain SERVICE/BACKEND" in err, err
    rc, out, err = lbadmin(d, "drain", "web/app1", "extra")
    assert rc == 2, err
    rc, out, err = lbadmin(d, "drain", "web/a$b")
    assert rc == 2 and "'web/a$b'" in err, err
    rc, out, err = lbadmin(d)
    assert rc == 2 and "usage: lbadmin" in err, err
    rc, out, err = lbadmin(d, "-x", "show")
    assert rc == 2 and "usage: lbadmin" in err, err
    p = subprocess.run([lbadmin_bin(), "-h"], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode == 0 and p.stderr == ""
    for word in ("drain [-w seconds]", "disable", "enable", "weight", "show",
                 "reload", "-s socket", "-f configfile"):
        assert word in p.stdout, word
    # Nobody at the other end.
    missing = str(tmp_path / "none.sock")
    rc, out, err = lbadmin(d, "show", sock=missing)
    assert (rc, err) == (1, "lbadmin: %s: No such file or directory\n" % missing)
    dead = str(tmp_path / "dead.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(dead)
    s.close()
    rc, out, err = lbadmin(d, "show", sock=dead)
    assert (rc, err) == (1, "lbadmin: %s: Connection refused\n" % dead)
    p = subprocess.run([lbadmin_bin(), "-f", "/nonexistent/lbd.conf", "show"],
                       capture_output=True, text=True, timeout=10 * SCALE)
    assert (p.returncode, p.stderr) == (
        1, "lbadmin: /nonexistent/lbd.conf: No such file or directory\n")
    p = subprocess.run([lbadmin_bin(), "-s", "x", "-f", "y", "show"],
                       capture_output=True, text=True, timeout=10 * SCALE)
    assert p.returncode == 2 and "usage: lbadmin" in p.stderr


def test_garbage_on_the_socket(lbd, backend):
    d, a, b = two_backends(lbd, backend)
    reply = control(d, b"foo\nshow web/app9\r\n\x00\x01\x02\nweight web/app1 999\n"
                       b"drain\n\xff\xfe bin\nshow web/app1\n")
    assert reply.split(b"\n") == [
        b"error: unknown command 'foo'",
        b"error: web/app9: no such backend",
        b"error: request contains a NUL byte",
        b"error: weight '999' is out of range 0..256",
        b"error: missing arguments: usage: drain SERVICE/BACKEND",
        b"error: unknown command '??'",
        b"ok", b"web/app1 up 1 0", b".", b""], reply
    # 255 bytes and the newline are fine; a longer line is refused and the
    # connection closed.
    line = b"show web/app1"
    reply = control(d, line + b" " * (255 - len(line)) + b"\n")
    assert reply == b"ok\nweb/app1 up 1 0\n.\n", reply
    reply = control(d, line + b" " * (256 - len(line)) + b"\n", shutdown=False)
    assert reply == b"error: request too long\n", reply
    reply = control(d, b"show " + b"x" * 5000 + b"\n", shutdown=False)
    assert reply == b"error: request too long\n", reply
    # Random bytes, through socat as an operator would.
    noise = os.urandom(200000)
    p = subprocess.run(["socat", "-t", "2", "-", "UNIX-CONNECT:" + sock_path(d)],
                       input=noise, capture_output=True, timeout=20 * SCALE)
    assert p.stdout.startswith(b"error:") or p.stdout == b"", p.stdout[:200]
    for line in p.stdout.splitlines():
        assert line.startswith(b"error:"), line
    # A client that never reads its replies is cut off; lbd carries on.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path(d))
    s.settimeout(10 * SCALE)
    cut = False
    try:
        for _ in range(20000):
            s.sendall(b"show\n" * 100)
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        cut = True
    s.close()
    assert cut
    assert "does not read its replies" in d.stderr()
    # 70 clients at once: 64 served, the rest told why.
    socks = []
    try:
        for _ in range(70):
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(sock_path(d))
            c.settimeout(5 * SCALE)
            socks.append(c)
        served = 0
        for c in socks[:64]:
            c.sendall(b"show web/app1\n")
            served += lbdtest.recv_line(c).startswith(b"ok")
        refused = sum(lbdtest.recv_line(c) == b"error: too many control clients\n"
                      for c in socks[64:])
        assert (served, refused) == (64, 6)
    finally:
        for c in socks:
            c.close()
    # Still alive and well.
    assert d.proc.poll() is None
    assert show(d)["web/app1"] == ("up", 1, 0)
    assert picks(d, 4) == {"app1": 2, "app2": 2}


def test_outsider_is_refused(lbd, backend):
    if os.geteuid() != 0:
        pytest.skip("needs root to run lbadmin as another uid")
    if not shutil.which("setpriv"):
        pytest.skip("needs setpriv")
    d, a, b = two_backends(lbd, backend)
    # A copy nobody can execute wherever the build tree is.
    binary = os.path.join(d.workdir, "lbadmin")
    shutil.copy(lbadmin_bin(), binary)
    os.chmod(binary, 0o755)
    as_nobody = ("setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                 "--clear-groups")
    sock = sock_path(d)
    # The file mode keeps nobody out...
    rc, out, err = lbadmin(d, "drain", "web/app1", prefix=as_nobody,
                           binary=binary, sock=sock)
    assert (rc, err) == (1, "lbadmin: %s: Permission denied\n" % sock), err
    # ...and so does SO_PEERCRED, when the file mode would let it in.
    os.chmod(sock, 0o666)
    try:
        rc, out, err = lbadmin(d, "drain", "web/app1", prefix=as_nobody,
                               binary=binary, sock=sock)
        assert (rc, err) == (1, "lbadmin: permission denied\n"), err
    finally:
        os.chmod(sock, 0o660)
    assert show(d)["web/app1"][0] == "up"
    assert lbdtest.poll_until(lambda: "refused uid %d" % NOBODY in d.stderr(),
                              5 * SCALE), d.describe()
    # Root still gets in.
    ok(d, "drain", "web/app1")

"""Hardening that a user can check from outside: who the processes run as,
what capabilities they hold, and who may write the runtime files."""

import grp
import os
import pwd
import stat

import pytest

import lbdtest


def status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.split()
    return out


CAP_CHOWN, CAP_KILL, CAP_SETGID, CAP_SETUID, CAP_NET_BIND_SERVICE = 0, 5, 6, 7, 10
MASTER_CAPS = sum(1 << c for c in (CAP_CHOWN, CAP_KILL, CAP_SETGID,
                                   CAP_SETUID, CAP_NET_BIND_SERVICE))


@pytest.mark.skipif(os.geteuid() != 0, reason="privilege drop needs root")
def test_privileges(lbd, backend):
    b = backend("ident", "b1")
    inst = lbd([lbdtest.service("web", [b])])
    master = status(inst.pid)
    assert int(master["CapEff"][0], 16) == MASTER_CAPS, master["CapEff"]
    assert int(master["CapPrm"][0], 16) == MASTER_CAPS, master["CapPrm"]
    nobody = pwd.getpwnam("nobody").pw_uid
    for pid in inst.workers():
        st = status(pid)
        assert [int(x) for x in st["Uid"]] == [nobody] * 4, st["Uid"]
        assert int(st["CapEff"][0], 16) == 0
        assert int(st["CapPrm"][0], 16) == 0
        assert st["NoNewPrivs"] == ["1"]
    # The master still does its jobs with what it kept: a reload that binds
    # a new listener, and starting workers as nobody.
    s = lbdtest.connect(inst.port["web"])
    assert lbdtest.recv_line(s) == b"b1\n"
    s.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="file ownership needs root")
def test_runtime_files(lbd, backend):
    b = backend("ident", "b1")
    inst = lbd([lbdtest.service("web", [b])])
    st = os.stat(os.path.join(inst.runtime_dir, "lbd.stats"))
    assert st.st_uid == 0
    assert stat.S_IMODE(st.st_mode) == 0o644
    sock = os.stat(os.path.join(inst.runtime_dir, "lbd.sock"))
    assert stat.S_ISSOCK(sock.st_mode)
    assert stat.S_IMODE(sock.st_mode) == 0o660
    assert sock.st_gid == grp.getgrnam("root").gr_gid
    # A worker (uid nobody) can not open the segment for writing: it writes
    # through the mapping it inherited from the master.
    pid = next(iter(inst.workers()))
    fds = [os.readlink("/proc/%d/fd/%s" % (pid, fd))
           for fd in os.listdir("/proc/%d/fd" % pid)]
    assert not any(f.endswith("lbd.stats") for f in fds)

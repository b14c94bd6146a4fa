"""The README's deployment commands, run as written in a scratch root so
they cannot rot.

README.md marks them with fenced blocks whose info string is "sh deploy"
(install, user, configuration, start) or "sh operate" (watch, drain,
reload, upgrade).  The deploy blocks run with DESTDIR set to a scratch
directory and /etc/lbd rewritten into it; adduser, systemctl and
contrib/install-deps.sh are stand-ins that only record their arguments.
Then the installed files are checked: the unit and the init script must
name the binary and configuration that were installed, and the installed
configuration must pass lbd -t.  Finally the installed init script (its
paths pointed into the scratch root) starts the installed lbd for real on
loopback, the operate blocks run against it (systemctl reload and kill
mapped to the init script's reload and SIGUSR2), and the init script's
status and stop are checked.  Nothing outside the scratch root is written:
a README command naming another system path fails the test instead.
"""

import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time

import pytest

import lbdtest
from lbdtest import SCALE, poll_until
from test_upgrade import subreaper

README = os.path.join(lbdtest.REPO, "README.md")
BLOCK = re.compile(r"^```sh (deploy|operate)\n(.*?)^```$", re.M | re.S)
# What a README command may name outside the scratch root, as written.
ALLOWED = ("PREFIX=/usr", "--home /nonexistent")
SYSTEM_PATH = re.compile(r"(?<![\w$}./-])/(etc|usr|run|var|lib|opt|srv|home)\b")


def readme_blocks(kind):
    with open(README) as f:
        text = f.read()
    found = [body for k, body in BLOCK.findall(text) if k == kind]
    assert found, "README.md has no ```sh %s block" % kind
    return found


def sandboxed(block, root):
    """block with /etc/lbd moved into root; fails on any other system path
    so that a new README command cannot write outside the scratch root."""
    text = block.replace("/etc/lbd/", root + "/etc/lbd/")
    probe = text.replace(root, "$ROOT")
    for ok in ALLOWED:
        probe = probe.replace(ok, "")
    # heredoc bodies are data (a config file), not commands
    probe = re.sub(r"<<'EOF'\n.*?^EOF$", "", probe, flags=re.M | re.S)
    bad = SYSTEM_PATH.search(probe)
    assert bad is None, ("README command names %r outside the scratch root; "
                         "teach %s to sandbox it:\n%s"
                         % (bad.group(0), __name__, block))
    return text


def stubs(log):
    """Shell functions standing in for what must not run for real here."""
    return "\n".join([
        'sh() { if [ "$1" = contrib/install-deps.sh ]; then '
        'echo "install-deps" >> %s; else command sh "$@"; fi; }' % log,
        'adduser() { echo "adduser $*" >> %s; }' % log,
    ]) + "\n"


def run_script(script, env, timeout=180):
    return subprocess.run(["bash", "-e", "-c", script], cwd=lbdtest.REPO,
                          env=env, capture_output=True, text=True,
                          timeout=timeout * SCALE)


def unit_settings(path):
    out = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"(\w+)=(.*)", line.strip())
            if m:
                out.setdefault(m.group(1), []).append(m.group(2))
    return out


def script_vars(path):
    with open(path) as f:
        return dict(re.findall(r"^([A-Z_]+)=(\S*)$", f.read(), re.M))


class Deployed:
    """The scratch root the deploy blocks install into.  Not under pytest's
    tmp_path, which sits in a 0700 directory the unprivileged user lbd's
    workers drop to could not reach."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.root = os.path.join(workdir, "root")
        os.makedirs(self.root)
        os.chmod(self.root, 0o755)
        self.log = os.path.join(workdir, "stubs.log")
        self.env = dict(os.environ)
        self.env.pop("LBD_CONF", None)
        self.env.update(DESTDIR=self.root, _SYSTEMCTL_SKIP_REDIRECT="1",
                        PATH="%s/usr/sbin:%s/usr/bin:%s" % (
                            self.root, self.root, os.environ["PATH"]))

    def path(self, p):
        return self.root + p

    def run_deploy(self):
        script = stubs(self.log) + 'systemctl() { echo "systemctl $*" >> %s; }\n' \
            % self.log
        for block in readme_blocks("deploy"):
            script += sandboxed(block, self.root)
        out = run_script(script, self.env)
        assert out.returncode == 0, "README deploy commands failed:\n%s\n%s" \
            % (out.stdout[-3000:], out.stderr[-3000:])
        with open(self.log) as f:
            return f.read().splitlines()


@pytest.fixture
def scratch():
    workdir = tempfile.mkdtemp(prefix="lbd-readme-")
    os.chmod(workdir, 0o755)
    yield workdir
    shutil.rmtree(workdir, ignore_errors=True)


def test_readme_deploy_in_scratch_root(scratch):
    d = Deployed(scratch)
    calls = d.run_deploy()
    assert "install-deps" in calls
    assert any(c.startswith("adduser ") and c.endswith(" lbd") for c in calls)
    assert "systemctl daemon-reload" in calls
    assert "systemctl enable --now lbd" in calls

    for p, mode in (("/usr/sbin/lbd", 0o755), ("/usr/sbin/lbadmin", 0o755),
                    ("/usr/bin/lbstat", 0o755), ("/etc/init.d/lbd", 0o755),
                    ("/usr/lib/systemd/system/lbd.service", 0o644),
                    ("/usr/share/man/man8/lbd.8", 0o644),
                    ("/etc/lbd/lbd.conf", 0o644)):
        st = os.stat(d.path(p))
        assert stat.S_IMODE(st.st_mode) == mode, (p, oct(st.st_mode))
    with open(d.path("/etc/lbd/lbd.conf")) as f:
        assert "service web" in f.read()	# the README's, not the example

    unit = unit_settings(d.path("/usr/lib/systemd/system/lbd.service"))
    start = unit["ExecStart"][0].split()
    assert start == ["/usr/sbin/lbd", "-f", "/etc/lbd/lbd.conf"], start
    assert unit["ExecStartPre"][0].split()[0] == "/usr/sbin/lbd"
    assert unit["ExecReload"][0].split()[0] == "/usr/sbin/lbd"
    assert unit["PIDFile"] == ["/run/lbd/lbd.pid"]
    init = script_vars(d.path("/etc/init.d/lbd"))
    assert init["DAEMON"] == "/usr/sbin/lbd"
    assert init["CONF"] == "/etc/lbd/lbd.conf"
    assert init["PIDFILE"] == "/run/lbd/lbd.pid"
    for p in ("/usr/lib/systemd/system/lbd.service", "/etc/init.d/lbd"):
        with open(d.path(p)) as f:
            assert "@" not in re.sub(r"lbd@|\$\*|\"\$@\"", "", f.read()), p
    assert subprocess.run(["sh", "-n", d.path("/etc/init.d/lbd")]).returncode == 0

    check = subprocess.run([d.path("/usr/sbin/lbd"), "-t", "-f",
                            d.path("/etc/lbd/lbd.conf")],
                           capture_output=True, text=True)
    assert check.returncode == 0 and "configuration OK" in check.stdout, check


def local_init(d, runtime_dir, conf, daemon=None):
    """The installed init script with its paths pointed into the scratch
    root (and the pid file into runtime_dir)."""
    with open(d.path("/etc/init.d/lbd")) as f:
        text = f.read()
    text = re.sub(r"^DAEMON=.*$", "DAEMON=" + (daemon or d.path("/usr/sbin/lbd")),
                  text, flags=re.M)
    text = re.sub(r"^CONF=.*$", "CONF=" + conf, text, flags=re.M)
    text = re.sub(r"^PIDFILE=.*$", "PIDFILE=%s/lbd.pid" % runtime_dir, text,
                  flags=re.M)
    # /etc/default/lbd of this machine must not redirect the test
    text = text.replace("[ -r /etc/default/lbd ] && . /etc/default/lbd", ":")
    path = os.path.join(os.path.dirname(runtime_dir),
                        "init-%s" % ("missing" if daemon else "lbd"))
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)
    return path


def init_run(d, script, *args):
    return subprocess.run(["sh", script] + list(args), env=d.env,
                          capture_output=True, text=True, timeout=60 * SCALE)


def test_init_script_status_and_missing_binary(scratch):
    d = Deployed(scratch)
    d.run_deploy()
    run = os.path.join(scratch, "run")
    os.makedirs(run)
    init = local_init(d, run, d.path("/etc/lbd/lbd.conf"))
    r = init_run(d, init, "status")
    assert r.returncode == 3 and "not running" in r.stdout, r
    with open(os.path.join(run, "lbd.pid"), "w") as f:
        f.write("%d\n" % os.getpid())		# alive, but not lbd
    r = init_run(d, init, "status")
    assert r.returncode == 1, r
    with open(os.path.join(run, "lbd.pid"), "w") as f:
        f.write("garbage\n")
    assert init_run(d, init, "status").returncode == 4
    os.unlink(os.path.join(run, "lbd.pid"))
    missing = local_init(d, run, d.path("/etc/lbd/lbd.conf"),
                         daemon=d.path("/usr/sbin/no-such-lbd"))
    for action in ("start", "reload", "upgrade", "restart"):
        r = init_run(d, missing, action)
        assert r.returncode == 5, (action, r)
        assert "no-such-lbd is missing" in r.stderr, (action, r)
    assert init_run(d, missing, "status").returncode == 3


def live_config(readme_conf, runtime_dir, port, backends):
    """The README's configuration on loopback: its listen address and
    backend addresses replaced, identity and runtime-dir for this test."""
    text = readme_conf.replace('"0.0.0.0:80"', '"127.0.0.1:%d"' % port)
    addrs = iter(b.address for b in backends)
    text = re.sub(r'address = "[^"]+"', lambda m: 'address = "%s"' % next(addrs),
                  text)
    user, group, admin = lbdtest.identity()
    return ('user = "%s"\ngroup = "%s"\nadmin-group = "%s"\n'
            'runtime-dir = "%s"\nshutdown-grace = "5s"\n%s'
            % (user, group, admin, runtime_dir, text))


def test_readme_operate_against_live_lbd(scratch, backend):
    d = Deployed(scratch)
    d.run_deploy()
    app1, app2 = backend("ident", "app1"), backend("ident", "app2")
    run = os.path.join(scratch, "run")
    conf = d.path("/etc/lbd/lbd.conf")
    with open(conf) as f:
        readme_conf = f.read()
    port = lbdtest.free_port()
    with open(conf, "w") as f:
        f.write(live_config(readme_conf, run, port, [app1, app2]))
    init = local_init(d, run, conf)
    pidfile = os.path.join(run, "lbd.pid")
    d.env["LBD_CONF"] = conf
    masters = []
    subreaper(True)
    try:
        r = init_run(d, init, "start")
        assert r.returncode == 0, r
        assert poll_until(lambda: os.path.exists(pidfile)
                          and init_run(d, init, "status").returncode == 0,
                          10 * SCALE), r
        first = int(open(pidfile).read())
        masters.append(first)
        assert poll_until(lambda: lbdtest.listening(first, port), 10 * SCALE)
        assert lbdtest.ident(port) in ("app1", "app2")

        shims = stubs(d.log) + (
            'lbstat() { case " $* " in *" -i "*) command lbstat -c 2 "$@" ;; '
            '*) command lbstat "$@" ;; esac; }\n'
            'systemctl() {\n'
            '  case "$*" in\n'
            '  "reload lbd") sh %(init)s reload ;;\n'
            '  "kill -s USR2 --kill-who=main lbd")\n'
            '    old=$(cat %(pid)s); kill -USR2 "$old"; i=0\n'
            '    while [ "$(cat %(pid)s 2>/dev/null)" = "$old" ] && [ $i -lt 100 ]; do\n'
            '      sleep 0.1; i=$((i + 1)); done ;;\n'
            '  *) echo "unexpected: systemctl $*" >&2; return 1 ;;\n'
            '  esac; }\n' % {"init": init, "pid": pidfile})
        script = shims
        for block in readme_blocks("operate"):
            script += "echo '--- block'\n" + sandboxed(block, d.root)
        out = run_script(script, d.env)
        assert out.returncode == 0, "README operate commands failed:\n%s\n%s" \
            % (out.stdout[-4000:], out.stderr[-4000:])
        assert "app2" in out.stdout			# lbstat's table
        assert '"version":"%s"' % lbdtest.version() in out.stdout
        new = int(open(pidfile).read())
        assert new != first, "the upgrade did not take over"
        masters.append(new)
        assert poll_until(lambda: lbdtest.is_dead(first), 15 * SCALE)
        assert lbdtest.ident(port) in ("app1", "app2")
        show = subprocess.run([d.path("/usr/sbin/lbadmin"), "show", "web/app2"],
                              env=d.env, capture_output=True, text=True)
        assert show.returncode == 0 and "drain" not in show.stdout, show

        r = init_run(d, init, "status")
        assert r.returncode == 0 and str(new) in r.stdout, r
        # the init script's own upgrade action, on the master just upgraded
        r = init_run(d, init, "upgrade")
        assert r.returncode == 0, r
        newer = int(open(pidfile).read())
        assert newer not in (first, new), r
        masters.append(newer)
        assert poll_until(lambda: lbdtest.is_dead(new), 15 * SCALE)
        try:
            os.waitpid(new, os.WNOHANG)	# reparented here
        except ChildProcessError:
            pass
        new = newer
        assert lbdtest.ident(port) in ("app1", "app2")
        # this test stands in for init: it reaps the master as it exits,
        # or start-stop-daemon would wait on a zombie
        stop = subprocess.Popen(["sh", init, "stop"], env=d.env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30 * SCALE
        while stop.poll() is None and time.monotonic() < deadline:
            try:
                os.waitpid(new, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.05)
        out, _ = stop.communicate(timeout=60 * SCALE)
        assert stop.returncode == 0, out
        assert init_run(d, init, "status").returncode == 3
    finally:
        stop_all(masters, pidfile)
        subreaper(False)


def stop_all(masters, pidfile):
    """Teardown: every master this test saw, and its workers, by pid."""
    try:
        masters.append(int(open(pidfile).read()))
    except (OSError, ValueError):
        pass
    for m in set(masters):
        workers = [pid for pid, _ in lbdtest.children(m)]
        if not lbdtest.is_dead(m):
            os.kill(m, signal.SIGTERM)
        poll_until(lambda: lbdtest.is_dead(m), 10 * SCALE)
        for pid in [m] + workers:
            if not lbdtest.is_dead(pid):
                os.kill(pid, signal.SIGKILL)
        try:			# reparented to this subreaper
            os.waitpid(m, os.WNOHANG)
        except ChildProcessError:
            pass

"""pytest fixtures for lbd's integration tests.

    backend(mode, *args)   start backend.py in its own process -> Backend
    lbd(services, ...)     start an lbd daemon on fresh loopback ports -> Lbd

Both are torn down after the test: backends are killed; lbd gets SIGTERM and
must exit in time, leave no worker behind and have no sanitizer report on
its stderr, or the test errors at teardown.
"""

import os

import pytest

import faults_util as fu
import lbdtest


def pytest_report_header(config):
    return "lbd build: %s (timeout scale %.1f)" % (lbdtest.build_dir(),
                                                    lbdtest.SCALE)


@pytest.fixture
def lbd_bin():
    path = os.path.join(lbdtest.build_dir(), "lbd")
    if not os.access(path, os.X_OK):
        pytest.fail("no lbd binary at %s (build it, or set LBD_BUILD)" % path)
    return path


@pytest.fixture
def backend(tmp_path):
    started = []

    def start(mode, *args):
        b = lbdtest.Backend(str(tmp_path), mode, *args)
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()


@pytest.fixture
def lbd(tmp_path, lbd_bin):
    def make(i, services, workers=2, **globals_):
        return lbdtest.Lbd(tmp_path / ("lbd%d" % i), services,
                           workers=workers,
                           globals_=lbdtest.globals_from(globals_))

    yield from lbdtest.lbd_fixture(make)


@pytest.fixture
def slow_source():
    """Backends that send stream(seed) a chunk every interval_ms."""
    started = []

    def start(name, seed, chunk=8192, interval_ms=500, total=1 << 30):
        b = fu.SlowSource(name, seed, chunk, interval_ms, total)
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()

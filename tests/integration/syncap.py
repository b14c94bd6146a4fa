"""Seeing TCP SYNs on lo: a packet socket with a classic BPF filter that
passes only IPv4 SYNs (no ACK) to one port, with kernel time stamps.

Health checks that only connect end before the handshake completes (lbd,
like HAProxy, turns quick ACKs off and resets on the SYN-ACK), so the
backend never accepts them: their SYN is the only trace.  Needs root
(CAP_NET_RAW).  Used by test_health_scale.py and tests/bench/healthscale.py.
"""

import ctypes
import socket
import struct
import time

SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = 35
ETH_P_ALL = 3
SO_RCVBUFFORCE = 33
SOL_PACKET = 263
PACKET_STATISTICS = 6


def _filter(port):
    """cBPF on lo (Ethernet framing): IPv4, TCP, not a fragment, destination
    port, SYN without ACK."""
    return [
        (0x28, 0, 0, 12), (0x15, 0, 11, 0x800),	# ldh [12]; jeq IPv4
        (0x30, 0, 0, 23), (0x15, 0, 9, 6),		# ldb [23]; jeq TCP
        (0x28, 0, 0, 20), (0x45, 7, 0, 0x1fff),	# ldh [20]; jset fragment
        (0xb1, 0, 0, 14),				# ldxb 4*([14]&0xf)
        (0x48, 0, 0, 16), (0x15, 0, 4, port),		# ldh [x+16]; jeq port
        (0x50, 0, 0, 27), (0x54, 0, 0, 0x12),		# ldb [x+27]; and SYN|ACK
        (0x15, 0, 1, 0x02),				# jeq SYN
        (0x06, 0, 0, 0x40000), (0x06, 0, 0, 0),	# accept; drop
    ]


def open_syn_socket(port):
    """A packet socket on lo that receives the SYNs sent to port."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    prog = _filter(port)
    code = ctypes.create_string_buffer(
        b"".join(struct.pack("HBBI", *ins) for ins in prog))
    fprog = struct.pack("HL", len(prog), ctypes.addressof(code))
    s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    # Past rmem_max (as root) so that a reader a moment late loses nothing.
    try:
        s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind(("lo", ETH_P_ALL))
    return s


def read_syn(s):
    """(destination address bytes, source port, CLOCK_REALTIME ns) of the
    next SYN, or None for a packet to skip.  A SYN sent again (its port
    seen before) is the same connection.  Raises socket.timeout as s does."""
    data, anc, _, addr = s.recvmsg(128, 64)
    if addr[2] != socket.PACKET_OUTGOING or len(data) < 38:
        return None		# lo shows each packet twice: keep one
    ihl = (data[14] & 15) * 4
    sport = struct.unpack("!H", data[14 + ihl:14 + ihl + 2])[0]
    t = time.time_ns()
    for level, kind, val in anc:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS \
                and len(val) >= 16:
            sec, nsec = struct.unpack("qq", val[:16])
            t = sec * 1_000_000_000 + nsec
    return data[30:34], sport, t


def drops(s):
    """Packets the socket dropped since the last call (a full buffer)."""
    st = s.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
    return struct.unpack("II", st)[1]


def probes(s, stopped):
    """(backend index, CLOCK_REALTIME ns) of each probe's first SYN to a
    backend at 127.1.x.y (index x * 250 + y - 1), until stopped() is true;
    s must have a timeout so that stopped() is asked now and then."""
    fresh = Fresh()
    while not stopped():
        try:
            got = read_syn(s)
        except (socket.timeout, InterruptedError):
            continue
        if got is None or got[0][:2] != b"\x7f\x01":
            continue
        i = got[0][2] * 250 + got[0][3] - 1
        if fresh(i, got[1], got[2]):
            yield i, got[2]


class Fresh:
    """Tells a probe's SYN from the kernel sending it again: the same
    source port to the same backend within RETRY_NS (the first
    retransmission comes 1 s after).  A later SYN from the same port is a
    new probe that happened to get the port again."""

    RETRY_NS = 1_500_000_000

    def __init__(self):
        self.last = {}

    def __call__(self, backend, sport, t):
        prev = self.last.get(backend)
        if prev is not None and prev[0] == sport and t - prev[1] < self.RETRY_NS:
            return False
        self.last[backend] = (sport, t)
        return True

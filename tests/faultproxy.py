"""A fault-injecting HTTP proxy for tests: listens on 127.0.0.1 and forwards to one HTTP server on 127.0.0.1
(the rclone S3 endpoint), breaking chosen requests on demand.

Each forwarded request gets its own upstream connection (the proxy rewrites `Connection: close`), so a fault
hits exactly one request. Faults, taken in order by the first request they match:

- "drop": close the connection without an answer;       - "stall": accept, never answer (until `stall_s`);
- ("status", 500 | 503 | 429, code): an S3 XML error;  - "truncate": forward half of the response body, close;
- "flip": flip one byte in the middle of the request body on its way to the server.

`outage(seconds)` drops every request for a while. Bounded: it serves loopback only, every socket has a
timeout, stalls end after `stall_s` or at close().
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

_HEAD_END = b"\r\n\r\n"


@dataclass
class Fault:
    action: object
    times: int
    method: str | None
    path: str | None  # a substring of the request target (path and query)


def _read_head(sock: socket.socket, buffer: bytes = b"") -> tuple[bytes, bytes]:
    """(head, what was read after it); head is b'' when the peer closed first."""
    while _HEAD_END not in buffer:
        block = sock.recv(65536)
        if not block:
            return b"", b""
        buffer += block
        if len(buffer) > 1 << 20:
            raise ValueError("request head too large")
    head, _, rest = buffer.partition(_HEAD_END)
    return head + _HEAD_END, rest


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return None


class FaultProxy:
    def __init__(self, upstream: str, stall_s: float = 30.0):
        parts = urlsplit(upstream)
        assert parts.hostname == "127.0.0.1", "the proxy forwards to loopback only"
        self.upstream = (parts.hostname, parts.port)
        self.stall_s = stall_s
        self.faults: list[Fault] = []
        self.log: list[tuple[str, str, str]] = []  # (method, target, what happened)
        self._outage_until = 0.0
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.endpoint = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    # control ----------------------------------------------------------------------------------------

    def inject(self, action, times: int = 1, method: str | None = None, path: str | None = None) -> None:
        with self._lock:
            self.faults.append(Fault(action, times, method, path))

    def outage(self, seconds: float) -> None:
        self._outage_until = time.monotonic() + seconds

    def pending(self) -> int:
        with self._lock:
            return sum(f.times for f in self.faults)

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # serving ----------------------------------------------------------------------------------------

    def _take(self, method: str, target: str):
        if time.monotonic() < self._outage_until:
            return "outage"
        with self._lock:
            for fault in self.faults:
                if (fault.method in (None, method)) and (fault.path is None or fault.path in target):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault.action
        return None

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        client.settimeout(30)
        upstream = None
        try:
            head, rest = _read_head(client)
            if not head:
                return
            method, target = head.split(b" ", 2)[:2]
            method, target = method.decode(), target.decode()
            action = self._take(method, target)
            self.log.append((method, target, str(action or "forward")))
            if action in ("drop", "outage"):
                return
            if action == "stall":
                self._closed.wait(self.stall_s)
                return
            if isinstance(action, tuple) and action[0] == "status":
                _, status, code = action
                body = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
                client.sendall(f"HTTP/1.1 {status} Injected\r\nContent-Type: application/xml\r\nContent-Length: "
                               f"{len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
                return
            upstream = socket.create_connection(self.upstream, timeout=30)
            lines = [line for line in head[:-4].split(b"\r\n")
                     if not line.lower().startswith((b"connection:", b"keep-alive:"))]
            upstream.sendall(b"\r\n".join(lines + [b"Connection: close"]) + _HEAD_END)
            length = _content_length(head) or 0
            flip_at = length // 2 if action == "flip" and length else None
            pump = threading.Thread(target=self._send_body, args=(client, upstream, rest, length, flip_at),
                                    daemon=True)
            pump.start()
            self._relay_response(upstream, client, truncate=action == "truncate")
            pump.join(timeout=5)
        except (OSError, ValueError):
            pass
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    try:
                        sock.close()
                    except OSError:
                        pass

    @staticmethod
    def _send_body(client, upstream, rest: bytes, length: int, flip_at: int | None) -> None:
        sent = 0
        try:
            block = rest
            while sent < length:
                if not block:
                    block = client.recv(min(65536, length - sent))
                    if not block:
                        return
                block = block[:length - sent]
                if flip_at is not None and sent <= flip_at < sent + len(block):
                    i = flip_at - sent
                    block = block[:i] + bytes([block[i] ^ 0x01]) + block[i + 1:]
                upstream.sendall(block)
                sent += len(block)
                block = b""
        except OSError:
            pass

    @staticmethod
    def _relay_response(upstream, client, truncate: bool) -> None:
        buffer = b""
        while True:
            head, buffer = _read_head(upstream, buffer)
            if not head:
                return
            client.sendall(head)
            if not head.startswith(b"HTTP/1.1 100"):
                break
        length = _content_length(head)
        if truncate and length:
            keep = length // 2
            while len(buffer) < keep:
                block = upstream.recv(65536)
                if not block:
                    break
                buffer += block
            client.sendall(buffer[:keep])
            return
        client.sendall(buffer)
        while True:
            block = upstream.recv(65536)
            if not block:
                return
            client.sendall(block)

"""A fault-injecting TCP proxy on loopback, for the fault tests' broker and registry.

Clients talk to ``127.0.0.1:<proxy.port>``; the proxy forwards to the real service. Kafka clients
reconnect to the address a broker *advertises*, so the private broker advertises this proxy on one
of its listeners (see ``conftest.py``): every connection of the job, bootstrap or not, goes
through here.

Modes (thread-safe setters; the proxy runs an asyncio loop in a daemon thread):

* ``latency(seconds)``: every chunk (every Kafka frame with ``kafka=True``) waits before it is
  forwarded, in both directions;
* ``refuse()`` / ``accept()``: stop listening (new connections get ECONNREFUSED; open ones live
  on) / listen again on the same port;
* ``blackhole()``: accept new connections but never answer (data is read and dropped): what a
  hung peer or a dropping firewall looks like;
* ``cut_all()``: reset every open connection now;
* ``cut_on_commit(when)`` (``kafka=True`` only), once: when a client sends EndTxn(commit), reset
  every connection either before the request reaches the broker (``"request"``: the commit never
  happened) or after the broker answered but before the answer reaches the client
  (``"response"``: the commit happened, the client does not know).
* ``normal()``: back to plain forwarding (and listening), statistics reset.

With ``kafka=True`` the client-to-broker stream is parsed into Kafka request frames (4-byte size,
then api key, version and correlation id), so faults land on request boundaries.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

END_TXN = 26  # Kafka api key of EndTxn (commit or abort a transaction)


@dataclass
class ProxyStats:
    """What passed through, for assertions ("the registry was not called again")."""

    connections: int = 0
    end_txn_commits: int = 0
    cuts: int = 0
    commit_cuts: list[str] = field(default_factory=list)


class FaultProxy:
    """``FaultProxy(("127.0.0.1", 9092), kafka=True).start()``; see the module docstring."""

    def __init__(self, target: tuple[str, int], *, kafka: bool = False, port: int = 0) -> None:
        self.target = target
        self.kafka = kafka
        self.port = port or _free_port()
        self.stats = ProxyStats()
        self._latency = 0.0
        self._blackhole = False
        self._commit_cut: str | None = None
        self._links: set[_Link] = set()
        self._server: asyncio.base_events.Server | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"proxy-{self.port}", daemon=True)

    # -- control (any thread) ----------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        self.accept()
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._close_server())
        self.cut_all()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def latency(self, seconds: float) -> None:
        self._latency = seconds

    def blackhole(self) -> None:
        self._blackhole = True

    def refuse(self) -> None:
        self._call(self._close_server())

    def accept(self) -> None:
        self._call(self._open_server())

    def cut_all(self) -> None:
        self._call(self._cut_all())

    def cut_on_commit(self, when: str) -> None:
        if not self.kafka or when not in ("request", "response"):
            raise ValueError("cut_on_commit needs kafka=True and when='request' or 'response'")
        self._commit_cut = when

    def normal(self) -> None:
        """Plain forwarding again, listening, with fresh statistics."""
        self._latency, self._blackhole, self._commit_cut = 0.0, False, None
        self.stats = ProxyStats()
        self.accept()

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    # -- the loop ------------------------------------------------------------------------------

    async def _open_server(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._handle, "127.0.0.1", self.port, reuse_address=True
            )

    async def _close_server(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _cut_all(self) -> None:
        links = list(self._links)
        if links:
            self.stats.cuts += 1
        for link in links:
            link.reset()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        if self._blackhole:
            link = _Link(client_w, None)
            self._links.add(link)
            try:
                while await client_r.read(65536):
                    pass
            finally:
                self._links.discard(link)
                link.reset()
            return
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            return
        link = _Link(client_w, server_w)
        self._links.add(link)
        try:
            upstream = self._frames_up(client_r, link) if self.kafka else self._chunks(client_r, server_w)
            downstream = self._frames_down(server_r, link) if self.kafka else self._chunks(server_r, client_w)
            await asyncio.gather(upstream, downstream)
        except (OSError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._links.discard(link)
            link.reset()

    async def _chunks(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(65536):
            await self._delay()
            writer.write(chunk)
            await writer.drain()
        writer.close()

    async def _frames_up(self, reader: asyncio.StreamReader, link: _Link) -> None:
        """Client -> broker, one request frame at a time."""
        assert link.server is not None
        while True:
            head = await reader.readexactly(4)
            body = await reader.readexactly(struct.unpack(">i", head)[0])
            api_key, _version, correlation = struct.unpack(">hhi", body[:8])
            if api_key == END_TXN and _is_commit(body):
                self.stats.end_txn_commits += 1
                if self._commit_cut == "request":
                    self._commit_cut = None
                    self.stats.commit_cuts.append("request")
                    await self._cut_all()
                    return
                if self._commit_cut == "response":
                    link.cut_on_response = correlation
            await self._delay()
            link.server.write(head + body)
            await link.server.drain()

    async def _frames_down(self, reader: asyncio.StreamReader, link: _Link) -> None:
        """Broker -> client, one response frame at a time."""
        while True:
            head = await reader.readexactly(4)
            body = await reader.readexactly(struct.unpack(">i", head)[0])
            if link.cut_on_response is not None and struct.unpack(">i", body[:4])[0] == link.cut_on_response:
                self._commit_cut = None
                self.stats.commit_cuts.append("response")
                await self._cut_all()
                return
            await self._delay()
            link.client.write(head + body)
            await link.client.drain()

    async def _delay(self) -> None:
        if self._latency:
            await asyncio.sleep(self._latency)


class _Link:
    """One proxied connection: both sockets, reset together."""

    def __init__(self, client: asyncio.StreamWriter, server: asyncio.StreamWriter | None) -> None:
        self.client, self.server = client, server
        self.cut_on_response: int | None = None

    def reset(self) -> None:
        for writer in (self.client, self.server):
            if writer is None or writer.transport.is_closing():
                continue
            sock = writer.get_extra_info("socket")
            if sock is not None:  # RST, not FIN: what a dying peer or a cut cable looks like
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()


def _is_commit(body: bytes) -> bool:
    """EndTxn's ``committed`` flag: the request's last byte (transactional id, producer id and
    epoch come first, then the flag, then, from v3, an empty tagged-field section)."""
    version = struct.unpack(">h", body[2:4])[0]
    return body[-2 if version >= 3 else -1] == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

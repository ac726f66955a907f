"""A TCP proxy on a loopback port that can be cut and restored (a WAN link, a store).

Tests run `TcpProxy` in their event loop; the benchmark runs it as a process
(`python -m benchmarks.tcpproxy PORT=HOST:PORT ...`) and cuts a link by
stopping that process, restores it by starting it again on the same ports.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from benchmarks.procs import HOST, free_port


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `upstream`; `cut()` refuses and drops connections."""

    def __init__(self, upstream_host: str, upstream_port: int, port: int = 0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = port or free_port()
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        """Listen (again, after a cut)."""
        self._server = await asyncio.start_server(self._accept, HOST, self.port)

    async def cut(self) -> None:
        """Stop listening and drop every open connection: the far side is unreachable."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def restore(self) -> None:
        """Listen again."""
        await self.start()

    async def stop(self) -> None:
        """Cut for good."""
        await self.cut()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        for pipe in (_pipe(reader, up_writer), _pipe(up_reader, writer)):
            task = asyncio.ensure_future(pipe)
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()


async def _serve(links: list[tuple[int, str, int]]) -> None:
    for port, host, upstream in links:
        await TcpProxy(host, upstream, port).start()
    await asyncio.Event().wait()  # until the process is stopped


def main() -> None:
    """Proxy each PORT=HOST:PORT until stopped."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("links", nargs="+", metavar="PORT=HOST:PORT")
    links = []
    for link in parser.parse_args().links:
        port, upstream = link.split("=", 1)
        host, upstream_port = upstream.rsplit(":", 1)
        links.append((int(port), host, int(upstream_port)))
    asyncio.run(_serve(links))


if __name__ == "__main__":
    main()

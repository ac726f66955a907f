"""The test fixtures' own robustness: a nats-server whose port was taken meanwhile."""

from __future__ import annotations

import socket
from pathlib import Path

from servers import HOST, NatsServer, port_open


def test_a_nats_server_whose_port_was_taken_meanwhile_starts_on_another(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "nats")
    taken = server.port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind((HOST, taken))
        holder.listen()
        with server:
            assert server.port != taken
            assert port_open(server.port)

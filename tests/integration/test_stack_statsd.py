"""Specification for the local StatsD: what a client sends over UDP is readable on the admin port."""

from __future__ import annotations

import re
import socket
import time
import uuid
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Stack

pytestmark = pytest.mark.integration


def admin_command(stack: Stack, command: str) -> str:
    with socket.create_connection(("127.0.0.1", stack.statsd_admin_port), timeout=5) as conn:
        conn.sendall(f"{command}\n".encode())
        reply = b""
        while not reply.endswith(b"END\n\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            reply += chunk
    return reply.decode()


def counter_value(stack: Stack, name: str) -> int | None:
    found = re.search(rf"'{re.escape(name)}': (\d+)", admin_command(stack, "counters"))
    return int(found[1]) if found else None


def test_counter_sent_over_udp_is_read_back_through_the_admin_port(stack: Stack) -> None:
    name = f"kafka_ingest.it.{uuid.uuid4().hex[:12]}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(f"{name}:2|c".encode(), (stack.statsd_host, stack.statsd_port))
        udp.sendto(f"{name}:3|c".encode(), (stack.statsd_host, stack.statsd_port))

    deadline = time.monotonic() + 5
    while counter_value(stack, name) != 5 and time.monotonic() < deadline:
        time.sleep(0.1)

    assert counter_value(stack, name) == 5

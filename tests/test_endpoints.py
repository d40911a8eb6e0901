"""Ports by binding: a `tcp://127.0.0.1:*` address gets its port from the kernel at bind, and
the process writes the address it really got into its endpoints file (qmtbus.endpoints)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import zmq

from qmtbus import endpoints, protocol
from qmtbus.config import ConfigError, load_config
from tests.support import ANY_PORT, Proc, Stack, call, start_gateway, wait_for


def test_given_a_star_port_then_bind_returns_the_port_the_kernel_gave() -> None:
    sock: zmq.Socket[Any] = zmq.Context.instance().socket(zmq.PUB)
    try:
        address = endpoints.bind(sock, ANY_PORT)
        host, _, port = address.rpartition(":")
        assert host == "tcp://127.0.0.1" and port.isdigit() and int(port) > 0
        assert endpoints.is_wildcard(ANY_PORT) and endpoints.is_wildcard("tcp://127.0.0.1:0")
        assert not endpoints.is_wildcard(address)
    finally:
        sock.close(0)


def test_given_an_endpoints_file_written_then_it_reads_back_and_a_bad_one_reads_none(
    tmp_path: Path,
) -> None:
    path = tmp_path / "data" / "gateway-endpoints.json"
    assert endpoints.read(path) is None
    endpoints.write(path, "gateway", {"events": "tcp://127.0.0.1:40001"})
    found = endpoints.read(path)
    assert found is not None and found.process == "gateway"
    assert found.addresses == {"events": "tcp://127.0.0.1:40001"}
    path.write_text("{")
    assert endpoints.read(path) is None


def test_given_three_star_addresses_then_the_config_loads_but_two_equal_ports_are_refused(
    tmp_path: Path,
) -> None:
    star = tmp_path / "star.toml"
    star.write_text(
        '[gateway]\nevents_address = "tcp://127.0.0.1:*"\ncommands_address = '
        '"tcp://127.0.0.1:*"\nquotes_address = "tcp://127.0.0.1:0"\n'
    )
    assert load_config(star).gateway.commands_address == "tcp://127.0.0.1:*"
    same = tmp_path / "same.toml"
    same.write_text(
        '[gateway]\nevents_address = "tcp://127.0.0.1:7201"\n'
        'commands_address = "tcp://127.0.0.1:7201"\n'
    )
    with pytest.raises(ConfigError, match="must differ"):
        load_config(same)


def test_given_star_addresses_then_the_gateway_serves_on_the_ports_it_reports_and_logs(
    stack: Stack,
) -> None:
    assert stack.unbound("gateway")
    proc = start_gateway(stack)
    try:
        found = endpoints.read(stack.data_dir / "gateway-endpoints.json")
        assert found is not None and found.pid == proc.pid
        assert set(found.addresses) == {"events", "commands", "quotes"}
        assert found.addresses["commands"] == stack.commands_address  # pinned by the stack
        reply = call(found.addresses["commands"], protocol.Ping())
        assert isinstance(reply, protocol.Pong)
        assert f"commands {found.addresses['commands']}" in proc.log()
    finally:
        assert proc.stop() == 0
    # a restart rebinds the pinned ports: a client keeps its address
    again = start_gateway(stack)
    try:
        assert isinstance(call(found.addresses["commands"], protocol.Ping()), protocol.Pong)
    finally:
        again.stop()


def test_given_star_query_address_then_the_recorder_reports_the_port_it_serves_on(
    stack: Stack,
) -> None:
    gateway = start_gateway(stack)
    recorder = Proc("recorder", stack).start()
    try:
        found = endpoints.read(stack.data_dir / "recorder-endpoints.json")
        assert found is not None and found.pid == recorder.pid
        assert found.addresses["query"] == stack.query_address
        assert not endpoints.is_wildcard(stack.query_address)
        wait_for(lambda: f"SQL endpoint {stack.query_address}" in recorder.log(), 20, "log line")
    finally:
        recorder.stop()
        gateway.stop()

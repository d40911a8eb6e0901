"""Helper processes of the benchmark: the baselines' servers and the gateway's note driver.

`python -m bench.peers KIND ARGS...` prints one JSON line `{"ready": true, ...}`
when it is listening, then answers each JSON command read from stdin with one
JSON line; it exits when stdin closes. Kinds:

- `echo ADDRESS` — bare pyzmq REP + msgspec: decodes the `order` command, answers
  an `order_ack` (the same messages, so the same sizes, as the gateway's).
- `hop ADDRESS` — bare pyzmq REP + msgspec: decodes the `order` command and answers
  the wall clock (time.time_ns, 8 bytes) at which it had it: one one-way hop, the
  floor of the gateway's intake (client send → broker call).
- `pub ADDRESS HWM` — bare pyzmq PUB publishing msgspec `note` events shaped like
  the gateway's; command `{"rate": R, "seconds": S}` (rate 0: as fast as it can).
- `vnpy REP_ADDRESS PUB_ADDRESS` — vnpy.rpc's RpcServer with an `order(req)`
  function returning an ack dict, and `RpcServer.publish` for the same publish
  command as `pub`.
- `vnpy-engine REP_ADDRESS PUB_ADDRESS sent|answered` — vnpy's MainEngine with a
  vnpy_xt-like gateway over the simulated miniQMT, served by vnpy.rpc (bench/vnpy_engine.py).
- `readers EVENTS_ADDRESS QUOTES_ADDRESS N` — N SUB sockets reading every event and
  one reading every tick, as fast as they come; any line on stdin answers what they
  read (events per reader, ticks, seconds since the first tick) and stops.
- `notes COMMANDS_ADDRESS CLIENTS WINDOW` — drives a real gateway's `note` command
  from CLIENTS pipelined DEALER sockets (WINDOW requests in flight each), paced
  to the same `{"rate", "seconds"}` command; answers the seqs the gateway gave.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec
import zmq

from qmtbus import protocol

EPOCH = "20261124T000000Z-bench0"
ACCOUNT = "SIM0001"
TOPIC = b"note." + ACCOUNT.encode()


def say(**message: Any) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def commands() -> Any:
    for line in sys.stdin:
        if line.strip():
            yield json.loads(line)


def note_event(seq: int) -> protocol.NoteEvent:
    return protocol.NoteEvent(
        account_id=ACCOUNT, epoch=EPOCH, seq=seq, ts=time.time_ns(), topic="bench", data={"i": seq}
    )


def note_dict(seq: int) -> dict[str, Any]:
    """The same event as a dict, as a vnpy publisher would pickle it."""
    return {
        "type": "note",
        "account_id": ACCOUNT,
        "epoch": EPOCH,
        "seq": seq,
        "ts": time.time_ns(),
        "topic": "bench",
        "data": {"i": seq},
    }


def paced(send: Callable[[int], object], rate: float, seconds: float, seq: int) -> dict[str, Any]:
    """Call send(seq) for seq+1, seq+2, ... at `rate` per second (0: flat out) for `seconds`."""
    first = seq + 1
    start = time.perf_counter()
    sent = 0
    while True:
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
        due = int(rate * elapsed) + 1 if rate else sent + 256
        if sent >= due:
            time.sleep(min(0.0005, (sent + 1) / rate - elapsed))
            continue
        while sent < due:
            seq += 1
            send(seq)
            sent += 1
    took = time.perf_counter() - start
    return {"sent": sent, "first": first, "last": seq, "seconds": took}


# -- echo ---------------------------------------------------------------------------


def run_echo(address: str) -> None:
    ctx = zmq.Context()
    rep = ctx.socket(zmq.REP)
    rep.setsockopt(zmq.LINGER, 0)
    rep.bind(address)
    decode = protocol.command_msgpack_decoder.decode
    encode = protocol.msgpack_encoder.encode
    poller = zmq.Poller()
    poller.register(rep, zmq.POLLIN)
    poller.register(sys.stdin.fileno(), zmq.POLLIN)
    say(ready=True)
    order_id = 0
    while True:
        ready = dict(poller.poll())
        if rep in ready:
            cmd = decode(rep.recv())
            order_id += 1
            ack = protocol.OrderAck(client_order_id=cmd.client_order_id, order_id=order_id)
            rep.send(encode(ack))
        if sys.stdin.fileno() in ready and not sys.stdin.readline():
            break
    rep.close(0)
    ctx.term()


def run_hop(address: str) -> None:
    ctx = zmq.Context()
    rep = ctx.socket(zmq.REP)
    rep.setsockopt(zmq.LINGER, 0)
    rep.bind(address)
    decode = protocol.command_msgpack_decoder.decode
    poller = zmq.Poller()
    poller.register(rep, zmq.POLLIN)
    poller.register(sys.stdin.fileno(), zmq.POLLIN)
    say(ready=True)
    while True:
        ready = dict(poller.poll())
        if rep in ready:
            decode(rep.recv())
            rep.send(time.time_ns().to_bytes(8, "little"))
        if sys.stdin.fileno() in ready and not sys.stdin.readline():
            break
    rep.close(0)
    ctx.term()


# -- bare PUB -------------------------------------------------------------------------


def run_pub(address: str, hwm: int) -> None:
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, hwm)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(address)
    encode = protocol.msgpack_encoder.encode
    send = pub.send_multipart
    say(ready=True, size=len(encode(note_event(1))))
    seq = 0
    for cmd in commands():
        result = paced(
            lambda s: send((TOPIC, encode(note_event(s)))), cmd["rate"], cmd["seconds"], seq
        )
        seq = result["last"]
        say(**result)
    pub.close(0)
    ctx.term()


# -- vnpy.rpc --------------------------------------------------------------------------


def run_vnpy(rep_address: str, pub_address: str) -> None:
    import pickle

    from vnpy.rpc import RpcServer

    server = RpcServer()
    order_id = [0]

    def order(req: dict[str, Any]) -> dict[str, Any]:
        order_id[0] += 1
        return {
            "type": "order_ack",
            "client_order_id": req["client_order_id"],
            "order_id": order_id[0],
            "duplicate": False,
            "status": "accepted",
            "error_msg": "",
        }

    def bye() -> bool:
        # wakes a client's SUB thread shortly after this reply, so it can notice stop()
        threading.Timer(0.05, server.publish, ("bye", None)).start()
        return True

    server.register(order)
    server.register(bye)
    server.start(rep_address, pub_address)
    size = len(pickle.dumps(note_dict(1), protocol=pickle.HIGHEST_PROTOCOL))
    say(ready=True, size=size)
    seq = 0
    for cmd in commands():
        result = paced(
            lambda s: server.publish("note.SIM0001", note_dict(s)), cmd["rate"], cmd["seconds"], seq
        )
        seq = result["last"]
        say(**result)
    server.stop()
    server.join()


# -- readers: event subscribers and a tick subscriber ----------------------------------


def run_readers(events_address: str, quotes_address: str, n: int) -> None:
    ctx = zmq.Context()
    poller = zmq.Poller()
    readers = []
    for _ in range(n):
        sock = ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.RCVHWM, 100_000)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(events_address)
        poller.register(sock, zmq.POLLIN)
        readers.append(sock)
    ticks = ctx.socket(zmq.SUB)
    ticks.setsockopt(zmq.LINGER, 0)
    ticks.setsockopt(zmq.SUBSCRIBE, b"tick.")
    ticks.connect(quotes_address)
    poller.register(ticks, zmq.POLLIN)
    poller.register(sys.stdin.fileno(), zmq.POLLIN)
    counts = dict.fromkeys(readers, 0)
    ticks_read, first_tick = 0, 0.0
    say(ready=True)
    while True:
        ready = dict(poller.poll())
        for sock in readers:
            if sock in ready:
                sock.recv_multipart()
                counts[sock] += 1
        if ticks in ready:
            ticks.recv_multipart()
            ticks_read += 1
            first_tick = first_tick or time.perf_counter()
        if sys.stdin.fileno() in ready:
            sys.stdin.readline()
            seconds = time.perf_counter() - first_tick if first_tick else 0.0
            say(events=list(counts.values()), ticks=ticks_read, seconds=seconds)
            break
    for sock in [*readers, ticks]:
        sock.close(0)
    ctx.term()


# -- note driver for a real gateway --------------------------------------------------------


class _Ack(msgspec.Struct):
    seq: int = 0


def run_notes(address: str, clients: int, window: int) -> None:
    ctx = zmq.Context()
    socks = []
    for _ in range(clients):
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(address)
        socks.append(sock)
    payload = protocol.msgpack_encoder.encode(
        protocol.PublishNote(topic="bench", data={"i": 123456})
    )
    decode = msgspec.msgpack.Decoder(_Ack).decode
    poller = zmq.Poller()
    for sock in socks:
        poller.register(sock, zmq.POLLIN)
    say(ready=True)
    for cmd in commands():
        rate, seconds = cmd["rate"], cmd["seconds"]
        in_flight = dict.fromkeys(socks, 0)
        sent = got = 0
        lo, hi = 1 << 62, 0
        start = time.perf_counter()
        while True:
            elapsed = time.perf_counter() - start
            sending = elapsed < seconds
            if not sending and got == sent:
                break
            if elapsed > seconds + 30:
                raise SystemExit("note driver: replies stopped coming")
            due = (int(rate * elapsed) + 1 if rate else 1 << 62) if sending else sent
            for sock in socks:
                while sent < due and in_flight[sock] < window:
                    sock.send_multipart((b"", payload))
                    in_flight[sock] += 1
                    sent += 1
            wait = 1 if sent < due or not rate else 0
            for sock, _ in poller.poll(wait):
                while True:
                    try:
                        frames = sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    seq = decode(frames[-1]).seq
                    lo, hi = min(lo, seq), max(hi, seq)
                    in_flight[sock] -= 1
                    got += 1
            if rate and sent >= due and sending:
                time.sleep(min(0.0005, max(0.0, (sent + 1) / rate - elapsed)))
        took = time.perf_counter() - start
        say(sent=got, first=lo if got else 0, last=hi, seconds=took)
    for sock in socks:
        sock.close(0)
    ctx.term()


def main(argv: list[str]) -> None:
    kind, args = argv[0], argv[1:]
    if kind == "echo":
        run_echo(args[0])
    elif kind == "hop":
        run_hop(args[0])
    elif kind == "pub":
        run_pub(args[0], int(args[1]))
    elif kind == "vnpy":
        run_vnpy(args[0], args[1])
    elif kind == "vnpy-engine":
        from bench import vnpy_engine

        vnpy_engine.run(args[0], args[1], args[2])
    elif kind == "readers":
        run_readers(args[0], args[1], int(args[2]))
    elif kind == "notes":
        run_notes(args[0], int(args[1]), int(args[2]))
    else:
        raise SystemExit(f"unknown peer kind {kind!r}")


if __name__ == "__main__":
    main(sys.argv[1:])

"""Decode one request from the ROUTER socket and dispatch it; bad input gets an error reply.

Nothing a client sends can stop the gateway: undecodable bytes, wrong field
types, missing fields, unknown types, oversized or multi-frame requests each
get an `error` reply with a code and a sentence.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import msgspec

from qmtbus import protocol as p
from qmtbus.failpoints import failpoint
from qmtbus.gateway.handoff import QueryMarketData, RunQuery
from qmtbus.gateway.journal import NotHeld
from qmtbus.gateway.window import refusal

if TYPE_CHECKING:
    from qmtbus.gateway.server import Server

log = logging.getLogger("gateway.commands")

MAX_NOTE_BYTES = 4096


class _RawReplay(msgspec.Struct, tag="replay", tag_field="type", kw_only=True):
    """ReplayReply with the journal's MessagePack events embedded as they are."""

    epoch: str
    events: list[msgspec.Raw]
    last_seq: int
    more: bool


def handle(server: Server, frames: list[bytes]) -> None:
    envelope, body = _split(frames)
    if len(body) != 1:
        message = f"a request is one frame; got {len(body)}"
        server.reply(envelope, False, p.ErrorReply(code=p.BAD_REQUEST, message=message))
        return
    payload = body[0]
    json = p.is_json(payload)
    limit = server.config.gateway.max_message_size
    if len(payload) > limit:
        message = f"request of {len(payload)} bytes exceeds the {limit}-byte limit"
        server.reply(envelope, json, p.ErrorReply(code=p.TOO_LARGE, message=message))
        return
    try:
        cmd = _decode(payload, json)
    except _BadRequest as err:
        server.reply(envelope, json, p.ErrorReply(code=err.code, message=str(err)))
        return
    try:
        dispatch(server, envelope, json, cmd)
    except Exception as err:  # a bug must cost one reply, not the gateway
        log.exception("handling %s failed", type(cmd).__name__)
        server.reply(
            envelope, json, p.ErrorReply(code=p.INTERNAL, message=f"internal error: {err}")
        )


def _split(frames: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """Envelope (routing id and the empty delimiter of REQ peers) and body."""
    for i, frame in enumerate(frames[1:], start=1):
        if not frame:
            return frames[: i + 1], frames[i + 1 :]
    return frames[:1], frames[1:]


class _BadRequest(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _decode(payload: bytes, json: bool) -> p.Command:
    decoder = p.command_json_decoder if json else p.command_msgpack_decoder
    try:
        cmd = decoder.decode(payload)
    except msgspec.ValidationError as err:
        text = str(err)
        if text.startswith("Invalid value") and text.endswith("at `$.type`"):
            return_type = text.split("'")[1] if "'" in text else "?"
            raise _BadRequest(p.UNKNOWN_TYPE, f"unknown request type {return_type!r}") from None
        if text.endswith("at `$.price_type`"):
            text += f"; {PRICE_TYPES}"
        raise _BadRequest(p.BAD_REQUEST, f"bad request: {text}") from None
    except msgspec.DecodeError as err:
        kind = "JSON" if json else "MessagePack"
        raise _BadRequest(p.BAD_REQUEST, f"request is not a valid {kind} map: {err}") from None
    except RecursionError:
        # a few kilobytes of nested arrays reach Python's recursion limit
        raise _BadRequest(
            p.BAD_REQUEST, "request nests lists or maps too deeply; flatten it"
        ) from None
    _check(cmd)
    return cmd


PRICE_TYPES = (
    "price_type is one of 5 (LATEST_PRICE), 11 (FIX_PRICE) or 42-48 (the exchanges' market "
    "orders, xtconstant MARKET_*)"
)


def _check(cmd: p.Command) -> None:
    """What the field types cannot say: checked before anything (the risk gate included)
    looks at the request."""
    if isinstance(cmd, p.PlaceOrder) and cmd.price_type == p.FIX_PRICE and not cmd.price > 0:
        raise _BadRequest(
            p.BAD_REQUEST,
            "bad request: price must be > 0 for price_type 11 (FIX_PRICE) - at `$.price`",
        )


def dispatch(server: Server, envelope: list[bytes], json: bool, cmd: p.Command) -> None:
    reply: Any
    match cmd:
        case p.Ping():
            reply = p.Pong()
        case p.GetStatus():
            reply = server.status()
        case p.PlaceOrder():
            server.orders.place(envelope, json, cmd)
            return
        case p.CancelOrder():
            server.orders.cancel(envelope, json, cmd)
            return
        case p.QueryAsset() | p.QueryOrders() | p.QueryTrades() | p.QueryPositions():
            if server.state != "ready" or server.stopping:
                why = (
                    "the gateway is stopping"
                    if server.stopping
                    else refusal(server.state, server.state_reason)
                )
                reply = p.ErrorReply(code=p.NOT_CONNECTED, message=f"{why}; no broker to query")
            else:
                server.lifecycle.submit(RunQuery(cmd, envelope, json))
                return
        case p.Replay():
            reply = _replay(server, cmd, json)
        case p.ListEpochs():
            held = [
                p.HeldEpoch(epoch=e, first_seq=f, last_seq=s) for e, f, s in server.journal.epochs()
            ]
            reply = p.EpochsReply(epochs=held, current=server.journal.epoch)
        case p.Halt() | p.ReduceOnly() | p.Resume():
            reply = _set_trading(server, cmd)
        case p.PublishNote():
            reply = _note(server, cmd)
        case p.SimFault() | p.SimSetPrice():
            reply = _sim(server, cmd)
        case p.SubscribeQuotes() | p.QueryQuote() | p.QueryBars() | p.QueryInstrument() if (
            server.stopping
        ):
            # the quote worker is stopping: no new market data work for it
            reply = p.ErrorReply(
                code=p.NOT_CONNECTED, message="the gateway is stopping; no market data"
            )
        case p.SubscribeQuotes():
            server.quotes.subscribe(envelope, json, cmd)
            return
        case p.UnsubscribeQuotes():
            server.quotes.unsubscribe(envelope, json, cmd)
            return
        case p.QueryQuote():
            server.quotes.query(envelope, json, cmd)
            return
        case p.QueryBars() | p.QueryInstrument():
            server.quotes.worker.submit(QueryMarketData(cmd, envelope, json))  # may block
            return
        case _:
            reply = p.ErrorReply(code=p.UNKNOWN_TYPE, message=f"unhandled request {cmd!r}")
    server.reply(envelope, json, reply)


def _replay(server: Server, cmd: p.Replay, json: bool) -> Any:
    try:
        payloads, last_seq, more = server.journal.read(cmd.epoch, cmd.from_seq, cmd.limit)
    except NotHeld as err:
        lost = p.Lost(
            epoch=err.epoch,
            from_seq=err.seq,
            to_seq=err.lost_to,
            reason=err.reason,
            first_seq=err.first_seq,
            last_seq=err.last_seq,
        )
        return p.ErrorReply(code=p.NOT_FOUND, message=str(err), lost=lost)
    if json:
        events = [p.decode_event(x) for x in payloads]
        return p.ReplayReply(epoch=cmd.epoch, events=events, last_seq=last_seq, more=more)
    raw = [msgspec.Raw(x) for x in payloads]
    return _RawReplay(epoch=cmd.epoch, events=raw, last_seq=last_seq, more=more)


_TRADING = {p.Halt: "halted", p.ReduceOnly: "reduce_only", p.Resume: "active"}


def _set_trading(server: Server, cmd: p.Halt | p.ReduceOnly | p.Resume) -> Any:
    state = _TRADING[type(cmd)]
    try:
        server.risk.set_trading(state, cmd.reason)  # type: ignore[arg-type]
    except OSError as err:
        message = (
            f"trading is {state} now but could not be saved ({err}); "
            "it will not survive a gateway restart"
        )
        return p.ErrorReply(code=p.INTERNAL, message=message)
    failpoint("state_saved")  # a restart announces a saved state its note never reached
    log.warning("trading %s: %s", state, cmd.reason or "(no reason given)")
    server.emit(p.NoteEvent(topic="trading", data={"trading": state, "reason": cmd.reason}))
    return server.status()


def _note(server: Server, cmd: p.PublishNote) -> Any:
    try:
        size = len(p.msgpack_encoder.encode(cmd.data))
    except (msgspec.EncodeError, OverflowError, TypeError, ValueError) as err:
        # JSON lets an integer be any size; the bus carries 64 bits
        message = f"bad request: note data cannot be sent on the bus ({err}) - at `$.data`"
        return p.ErrorReply(code=p.BAD_REQUEST, message=message)
    if server.disk_full:
        message = f"disk full: the gateway cannot write its journal ({server.disk_full}); "
        return p.ErrorReply(code=p.DISK_FULL, message=message + "note not published")
    if size > MAX_NOTE_BYTES:
        message = f"note data is {size} bytes encoded; the limit is {MAX_NOTE_BYTES}"
        return p.ErrorReply(code=p.TOO_LARGE, message=message)
    seq = server.emit(p.NoteEvent(topic=cmd.topic, data=cmd.data))
    return p.NoteAck(seq=seq)


def _sim(server: Server, cmd: p.SimFault | p.SimSetPrice) -> Any:
    from qmtbus.gateway.broker import NotSupported

    try:
        return p.SimAck(detail=server.broker.sim_command(cmd))
    except NotSupported as err:
        return p.ErrorReply(code=p.BAD_REQUEST, message=str(err))
    except (ValueError, OverflowError) as err:
        # a value the protocol lets through but the simulator cannot use (a price of 1e306)
        tag = type(cmd).__struct_config__.tag
        return p.ErrorReply(
            code=p.BAD_REQUEST, message=f"the simulator cannot take this {tag}: {err}"
        )

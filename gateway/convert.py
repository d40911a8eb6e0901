"""Broker objects → protocol records, by attribute name (the real client hands
native objects, not xttype instances, so never isinstance)."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from qmtbus import protocol as p

T = TypeVar("T", bound=msgspec.Struct)

# xtquant's own async request number is `seq`; on the bus it is `async_seq`.
_RENAMES = {"async_seq": "seq"}
# The bus header is stamped by the I/O thread, never read from a broker object.
_HEADER = frozenset({"epoch", "seq", "ts"})


def read(cls: type[T], obj: Any, **extra: Any) -> T:
    """Build `cls` from the attributes of `obj` that `cls` has a field for.

    Missing attributes keep the field default (some callbacks lack
    strategy_name); values of the wrong type are coerced where that is safe."""
    values: dict[str, Any] = {}
    for name in cls.__struct_fields__:
        if name in extra or name in _HEADER:
            continue
        value = getattr(obj, _RENAMES.get(name, name), None)
        if value is None:
            continue
        values[name] = value
    values.update(extra)
    try:
        return msgspec.convert(values, cls, strict=False)
    except msgspec.ValidationError:
        # A field of an unexpected type: keep what converts, drop the rest.
        clean: dict[str, Any] = {}
        for name, value in values.items():
            try:
                msgspec.convert({name: value}, cls, strict=False)
            except msgspec.ValidationError:
                continue
            clean[name] = value
        return msgspec.convert(clean, cls, strict=False)


def asset(obj: Any) -> p.Asset:
    return read(p.Asset, obj)


def order(obj: Any) -> p.Order:
    return read(p.Order, obj)


def trade(obj: Any) -> p.Trade:
    return read(p.Trade, obj)


def position(obj: Any) -> p.Position:
    return read(p.Position, obj)


def as_event(record: p.Asset | p.Order | p.Trade | p.Position) -> p.Event:
    """The event for a broker record (asset → AssetEvent, …), header fields unset."""
    cls = _EVENT_OF[type(record)]
    return cls(**msgspec.structs.asdict(record))


_EVENT_OF: dict[type[Any], type[Any]] = {
    p.Asset: p.AssetEvent,
    p.Order: p.OrderEvent,
    p.Trade: p.TradeEvent,
    p.Position: p.PositionEvent,
}

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


def _plan(cls: type[msgspec.Struct]) -> tuple[tuple[str, str], ...]:
    """(field, attribute of the broker object) for each field `read` fills, worked out once."""
    plan = tuple(
        (name, _RENAMES.get(name, name)) for name in cls.__struct_fields__ if name not in _HEADER
    )
    _PLANS[cls] = plan
    return plan


_PLANS: dict[type[Any], tuple[tuple[str, str], ...]] = {}


def read(cls: type[T], obj: Any, **extra: Any) -> T:
    """Build `cls` from the attributes of `obj` that `cls` has a field for.

    Missing attributes keep the field default (some callbacks lack
    strategy_name); values of the wrong type are coerced where that is safe.
    One pass over a plan made once per class, then one msgspec.convert (which
    checks and coerces every value); see bench/CHANGES.md for what it costs."""
    values = {
        name: value
        for name, attr in (_PLANS.get(cls) or _plan(cls))
        if (value := getattr(obj, attr, None)) is not None
    }
    if extra:
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


def asset_event(obj: Any) -> p.AssetEvent:
    """A push read straight into its event: as_event(asset(obj)) in one conversion."""
    return read(p.AssetEvent, obj)


def order_event(obj: Any) -> p.OrderEvent:
    return read(p.OrderEvent, obj)


def trade_event(obj: Any) -> p.TradeEvent:
    return read(p.TradeEvent, obj)


def position_event(obj: Any) -> p.PositionEvent:
    return read(p.PositionEvent, obj)


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

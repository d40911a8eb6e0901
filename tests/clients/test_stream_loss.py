"""EventStream over a damaged journal: the stream names the lost seqs and goes on after them."""

from __future__ import annotations

from pathlib import Path

from qmtbus import EventStream, Gateway
from qmtbus.gateway.journal import MAGIC
from tests.support import Stack, start_gateway


def test_given_a_damaged_frame_in_a_resumed_epoch_then_the_stream_reports_it_and_goes_on(
    tmp_path: Path,
) -> None:
    stack = Stack(tmp_path, {"client": {"timeout": 2.0, "retries": 2}})
    gateway = start_gateway(stack)
    with Gateway.from_config(stack.config_path) as gw:
        for i in range(50):
            gw.note("test", {"i": i})
        old = gw.status().epoch
    assert gateway.stop() == 0
    (segment,) = sorted((stack.data_dir / "journal" / old).glob("*.seg"))
    data = bytearray(segment.read_bytes())
    # the first frame's header: one flipped bit in its seq breaks its checksum
    data[len(MAGIC) + 8] ^= 0x01
    segment.write_bytes(bytes(data))
    gateway = start_gateway(stack)
    try:
        with Gateway.from_config(stack.config_path) as gw:
            last = next(e.last_seq for e in gw.epochs().epochs if e.epoch == old)
            with EventStream.from_config(stack.config_path, start_from=(old, 0)) as stream:
                got = []
                while not got or got[-1].epoch == old:
                    ev = stream.next(timeout=10)
                    assert ev is not None, "the stream stalled at the damaged frame"
                    got.append(ev)
                seen = [e.seq for e in got if e.epoch == old]
                assert seen == list(range(2, last + 1))
                assert stream.lost[0].epoch == old
                assert (stream.lost[0].from_seq, stream.lost[0].to_seq) == (1, 1)
    finally:
        gateway.stop()

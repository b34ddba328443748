"""The BER framer rejects hostile lengths at the header and checks nesting before ldaptor parses."""

from __future__ import annotations

import pytest

from abook.server import encode
from abook.server.framing import FrameError, FrameLimits, Framer, check_message, extended_name

LIMITS = FrameLimits(max_filter_depth=4, max_filter_elements=10, max_dn_length=64)


def _search(filt: bytes, base: bytes = b"o=crm") -> bytes:
    op = encode.tlv(0x63, encode.octets(base) + b"\x0a\x01\x02\x0a\x01\x00\x02\x01\x00\x02\x01\x00\x01\x01\x00"
                    + filt + b"\x30\x00")
    return encode.message(1, op)


def _and(depth: int) -> bytes:
    f = b"\x87\x02cn"
    for _ in range(depth):
        f = encode.tlv(0xA0, f)
    return f


def test_messages_split_across_reads_come_out_whole():
    pdu = _search(b"\x87\x02cn")
    framer = Framer(LIMITS, 1000)
    stream = pdu * 3
    got = []
    for i in range(0, len(stream), 7):
        got += framer.feed(stream[i: i + 7])
    assert got == [(0x63, pdu)] * 3 and framer.buffered == 0


@pytest.mark.parametrize("header, reason", [
    (b"\x30\x84\x80\x00\x00\x00", "larger than the limit"),
    (b"\x30\x80", "indefinite"),
    (b"\x30\x85\x01\x00\x00\x00\x00", "length of length"),
    (b"\x04\x01", "not an LDAPMessage"),
    (b"\x3f\x81", "multi-byte tags"),
])
def test_bad_headers_are_refused_before_any_body_arrives(header, reason):
    with pytest.raises(FrameError, match=reason):
        Framer(LIMITS, 1000).feed(header)


def test_the_size_limit_applies_to_each_new_message():
    framer = Framer(LIMITS, 1000)
    pdu = _search(b"\x87\x02cn")
    assert framer.feed(pdu)
    framer.max_size = 10  # the connection lowers it (a failed rebind leaves it anonymous)
    with pytest.raises(FrameError, match="larger than the limit"):
        framer.feed(pdu)


def test_filter_depth_elements_and_dn_length():
    assert check_message(_search(_and(4)), LIMITS) == 0x63
    with pytest.raises(FrameError, match="nested too deep"):
        check_message(_search(_and(5)), LIMITS)
    with pytest.raises(FrameError):
        check_message(_search(_and(10_000)), LIMITS)
    with pytest.raises(FrameError, match="too many elements"):
        check_message(_search(encode.tlv(0xA1, b"\x87\x02cn" * 10)), LIMITS)
    with pytest.raises(FrameError, match="DN too long"):
        check_message(_search(b"\x87\x02cn", b"cn=" + b"x" * 64), LIMITS)
    with pytest.raises(FrameError, match="unknown filter choice"):
        check_message(_search(b"\x8f\x02cn"), LIMITS)


def test_lengths_must_fit_their_parents_and_ops_must_be_requests():
    with pytest.raises(FrameError, match="overruns"):
        check_message(b"\x30\x06\x02\x01\x01\x63\x10\x04", LIMITS)
    with pytest.raises(FrameError, match="not a request"):
        check_message(encode.message(1, b"\x65\x00"), LIMITS)  # a response sent to the server
    with pytest.raises(FrameError, match="bad message id"):
        check_message(b"\x30\x04\x04\x00\x42\x00", LIMITS)
    assert check_message(encode.message(5, b"\x42\x00"), LIMITS) == 0x42


@pytest.mark.parametrize("pdu", [
    bytes.fromhex("300c0201fb600702010304008000"),  # messageID -5 (the review's messageid_negative.bin)
    bytes.fromhex("300f0204ffffffff600702010304008000"),  # -1 in four octets
    bytes.fromhex("300f020480000000600702010304008000"),  # -2^31
])
def test_negative_message_ids_are_refused(pdu):
    with pytest.raises(FrameError, match="bad message id"):
        check_message(pdu, LIMITS)
    assert check_message(bytes.fromhex("300f02047fffffff600702010304008000"), LIMITS) == 0x60  # maxInt


def test_a_boolean_is_one_octet():
    two_octets = bytes.fromhex("3026020103632104000a01000a010002010002010001020001870b6f626a656374436c6173733000")
    with pytest.raises(FrameError, match="BOOLEAN"):
        check_message(two_octets, LIMITS)
    empty = encode.message(1, encode.tlv(0x63, encode.octets(b"") + b"\x0a\x01\x00\x0a\x01\x00\x02\x01\x00"
                                         b"\x02\x01\x00\x01\x00\x87\x02cn\x30\x00"))
    with pytest.raises(FrameError, match="BOOLEAN"):
        check_message(empty, LIMITS)
    one_octet = bytes.fromhex("3025020103632004000a01000a0100020100020100010100870b6f626a656374436c6173733000")
    assert check_message(one_octet, LIMITS) == 0x63


def test_extended_request_name():
    starttls = bytes.fromhex("301d02010177188016312e332e362e312e342e312e313436362e3230303337")
    assert extended_name(starttls) == b"1.3.6.1.4.1.1466.20037"
    assert extended_name(encode.message(3, b"\x77\x00")) is None


def test_release_drops_the_buffer():
    framer = Framer(LIMITS, 1 << 20)
    assert framer.feed(b"\x30\x83\x0f\xff\xf0\x02\x01\x02" + b"x" * 1000) == []
    assert framer.buffered == 1008
    framer.release()
    assert framer.buffered == 0


def test_a_control_criticality_is_one_octet():
    def unbind_with_control(criticality: bytes) -> bytes:
        control = encode.tlv(0x30, encode.octets(b"1.2.840.113556.1.4.319") + criticality
                             + encode.octets(b"\x30\x05\x02\x01\x05\x04\x00"))
        return encode.message(2, encode.tlv(0x42, b""), encode.tlv(0xA0, control))

    with pytest.raises(FrameError, match="BOOLEAN"):
        check_message(unbind_with_control(b"\x01\x02\x00\xff"), LIMITS)
    assert check_message(unbind_with_control(b"\x01\x01\xff"), LIMITS) == 0x42
    assert check_message(unbind_with_control(b""), LIMITS) == 0x42  # criticality DEFAULT FALSE

"""Reading odd messages and finding tokens: pure functions, no store."""

from __future__ import annotations

from email.utils import getaddresses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abook.config.model import TrackingConfig
from abook.mailbox.headers import _simple_addresses, header_text, message_ids
from abook.tracking.parse import Unreadable, parse_message
from abook.tracking.tokens import find_tokens, format_token, with_token
from tests.unit.tracking.conftest import MAIL


def parsed(name: str):  # type: ignore[no-untyped-def]
    return parse_message((MAIL / name).read_bytes())


def test_headers_in_8bit_wrong_charsets_and_encoded_words_are_decoded() -> None:
    assert parsed("eightbit_headers.eml").subject == "Grüße aus Köln"
    assert parsed("eightbit_headers.eml").sender == ("Jörg Müller", "joerg@example.de")
    assert parsed("latin1_headers.eml").subject == "Café crème"
    assert parsed("latin1_headers.eml").body_text == "Crème brûlée\r\n"
    assert parsed("encoded_words.eml").subject == "Réunion de projet"
    assert [a[1] for a in parsed("encoded_words.eml").addresses] == ["Béatrice", "José", ""]
    assert parsed("x_unknown_charset.eml").subject == "Café"
    assert parsed("wrong_charset.eml").body_text == "naïve café\r\n"
    assert parsed("unknown_8bit_charset.eml").body_text.startswith("Stra")  # type: ignore[union-attr]
    assert parsed("nul_bytes.eml").subject == "nulin subject"  # NUL would be refused by PostgreSQL


def test_broken_and_missing_boundaries_keep_text_and_attachments() -> None:
    broken = parsed("broken_boundary.eml")
    assert broken.body_text == "first part"
    assert [(a.filename, a.body) for a in broken.attachments] == [("a.pdf", b"%PDF-1.4\n")]
    missing = parsed("missing_boundary.eml")
    assert "where is the boundary?" in (missing.body_text or "") and missing.attachments == ()


def test_attachment_names_and_inline_parts() -> None:
    assert [a.filename for a in parsed("rfc2231_filename.eml").attachments] == ["Rechnung März.pdf"]
    (image,) = parsed("alternative_inline_image.eml").attachments
    assert (image.mimetype, image.content_id, image.path) == ("image/png", "logo@x", "2")
    (tnef,) = parsed("tnef_winmail.eml").attachments
    assert (tnef.filename, tnef.mimetype, tnef.body[:4]) == ("winmail.dat", "application/ms-tnef", b"\x78\x9f\x3e\x22")


@pytest.mark.parametrize("name", ["empty.eml", "binary_garbage.eml"])
def test_what_is_no_message_is_unreadable(name: str) -> None:
    with pytest.raises(Unreadable):
        parsed(name)


def test_malformed_addresses_keep_what_is_an_address() -> None:
    assert [a[2] for a in parsed("malformed_addresses.eml").addresses] == ["x@y"]
    assert parsed("malformed_addresses.eml").date is None


def test_message_ids_are_normalised() -> None:
    assert message_ids(" <A.B@Example.COM>\r\n <c@D> ") == ["A.B@example.com", "c@d"]
    assert message_ids("bare@Host") == ["bare@host"]
    assert header_text("=?utf-8?q?a?= =?utf-8?q?b?=") == "ab"


def test_tokens_are_formatted_from_the_config() -> None:
    config = TrackingConfig(token_prefix="CRM:", token_base=100, user_digits=3, counter_digits=4)
    assert format_token(config, 7, 42) == "CRM:1070042"
    assert format_token(TrackingConfig(user_digits=2, counter_digits=2), 5, 123) == "CRM:05123"


def test_tokens_are_found_wherever_they_sit_in_the_subject() -> None:
    config = TrackingConfig()
    for subject in ("CRM:0010042", "RE: CRM:0010042", "RE: FW: AW: SV: Re: Offer CRM:0010042 revised",
                    "aw: [ext] Offer (crm: 0010042)", "Sv:Fw:Offer crm:0010042"):
        assert find_tokens(config, subject) == ["CRM:0010042"], subject
    assert find_tokens(config, "CRM:001004") == []  # too few digits
    assert find_tokens(config, "Order 0010042") == []
    assert with_token(config, "Offer CRM:0010042", "CRM:0010042") == "Offer CRM:0010042"
    assert with_token(config, "Offer", "CRM:0010042") == "Offer CRM:0010042"


_ATOM = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCXYZ0123456789.-_+", min_size=1, max_size=12)
_NAME = st.text(alphabet="abcdefghij XYZ=?ö'!#", max_size=16)


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.tuples(_NAME, _ATOM, _ATOM, st.booleans()), min_size=1, max_size=6),
       st.sampled_from([", ", ",\r\n ", ",", " , "]))
def test_the_fast_address_path_agrees_with_the_email_package(items, separator) -> None:  # type: ignore[no-untyped-def]
    value = separator.join(f"{n} <{a}@{d}>" if angle or n.strip() else f"{a}@{d}" for n, a, d, angle in items)
    fast = _simple_addresses([value])
    if fast is not None:
        assert fast == [(n, a) for n, a in getaddresses([value])]

"""The RFC 2849 reader and writer: folding, base64, comments, line numbers in every error."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, strategies as st

from abook.transfer.ldif import LdifError, format_attr, format_record, read_ldif


def records(text: str | bytes) -> list:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return list(read_ldif(io.BytesIO(data), "t.ldif"))


def test_folded_lines_base64_comments_and_version() -> None:
    text = (
        "version: 1\n"
        "# a comment\n"
        "#  folded into the comment\n"
        " still the comment\n"
        "dn: cn=J\xfcrgen M\xfcller,ou=Contacts,o=crm\n"
        "cn:: SsO8cmdlbiBNw7xsbGVy\n"
        "description: a long\n"
        "  value\n"
        "mail:   spaced@example.com\n"
        "\n\n"
        "dn:: Y249w5hzdGVyZ2FhcmQsb3U9Q29udGFjdHMsbz1jcm0=\n"
        "cn;lang-da: \xd8stergaard\n"
        "empty:\n"
    )
    first, second = records(text)
    assert first.dn == "cn=J\xfcrgen M\xfcller,ou=Contacts,o=crm" and first.line == 5
    assert [(a.name, a.value, a.line) for a in first.attrs] == [
        ("cn", "J\xfcrgen M\xfcller", 6), ("description", "a long value", 7), ("mail", "spaced@example.com", 9)]
    assert second.dn == "cn=\xd8stergaard,ou=Contacts,o=crm" and second.line == 12
    assert [(a.name, a.value) for a in second.attrs] == [("cn", "\xd8stergaard"), ("empty", "")]


def test_crlf_line_ends_and_binary_values() -> None:
    (rec,) = records(b"dn: cn=a,o=crm\r\njpegPhoto:: /9j/4A==\r\ncn: a\r\n")
    assert rec.attrs[0].value == b"\xff\xd8\xff\xe0" and rec.attrs[1].value == "a"


@pytest.mark.parametrize(("text", "line", "message"), [
    ("dn: cn=a,o=crm\ncn: a\n\ndn: cn=b,o=crm\ncn:: !!notbase64\n", 5, "the base64 value of cn is not valid base64"),
    (" continued\n", 1, "a continuation line (starting with a space) follows no line"),
    ("dn: cn=a,o=crm\nno colon here\n", 2, 'expected "attribute: value"'),
    ("cn: a\n", 1, 'a record must start with "dn:", not \'cn\''),
    ("dn: cn=a,o=crm\nchangetype: modify\nreplace: cn\n", 2, "change records are not supported (changetype: modify)"),
    ("version: 2\ndn: cn=a,o=crm\n", 1, "only LDIF version 1 is understood"),
    ("dn: cn=a,o=crm\njpegPhoto:< file:///etc/passwd\n", 2, 'jpegPhoto: values given by URL (":<") are not supported'),
])
def test_errors_name_the_file_and_line(text: str, line: int, message: str) -> None:
    with pytest.raises(LdifError) as e:
        records(text)
    assert str(e.value) == f"t.ldif:{line}: {message}"


def test_writer_base64_where_rfc2849_requires_and_folds_long_lines() -> None:
    assert format_attr("cn", "Anna") == "cn: Anna\n"
    assert format_attr("cn", " leading space") == "cn:: IGxlYWRpbmcgc3BhY2U=\n"
    assert format_attr("cn", ":colon") == "cn:: OmNvbG9u\n"
    assert format_attr("cn", "Zo\xeb") == "cn:: Wm/Dqw==\n"
    long = format_attr("description", "x" * 200)
    assert all(len(line) <= 76 for line in long.splitlines())
    (rec,) = records("dn: cn=a\n" + long)
    assert rec.attrs[0].value == "x" * 200


@given(st.lists(st.tuples(st.sampled_from(["cn", "description", "mail"]),
                          st.text(st.characters(blacklist_categories=("Cs",)), max_size=120)), max_size=6),
       st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40))
def test_whatever_is_written_reads_back_the_same(attrs: list[tuple[str, str]], rdn: str) -> None:
    dn = "cn=" + rdn + ",o=crm"
    (rec,) = records(format_record(dn, attrs))
    assert rec.dn == dn
    assert [(a.name, a.value) for a in rec.attrs] == attrs


@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_derived_ids_are_uuid5_of_the_name(name: str) -> None:
    import uuid

    from abook.transfer.parse import NAMESPACE, derived_id

    assert derived_id(name) == str(uuid.uuid5(NAMESPACE, name))


@pytest.mark.parametrize(("text", "expected"), [
    ("20261202141636Z", "2026-12-02T14:16:36+00:00"),
    ("20261202141636.5Z", "2026-12-02T14:16:36.500000+00:00"),
    ("2026-12-02T15:16:36+01:00", "2026-12-02T14:16:36+00:00"),
    ("2026-12-02 14:16:36", "2026-12-02T14:16:36+00:00"),
])
def test_times_in_generalized_or_iso_form(text: str, expected: str) -> None:
    from abook.transfer.fields import format_datetime, parse_datetime

    assert parse_datetime(text).isoformat() == expected
    assert parse_datetime(format_datetime(parse_datetime(text))) == parse_datetime(text)


@pytest.mark.parametrize("text", ["2026120214163Z", "20261302141636Z", "yesterday"])
def test_bad_times_are_refused(text: str) -> None:
    from abook.transfer.fields import BadValue, parse_datetime

    with pytest.raises(BadValue, match="expected a time such as 20261202141636Z"):
        parse_datetime(text)

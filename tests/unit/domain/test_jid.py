from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from whatsgate.domain.errors import InvalidJid, InvalidPhoneNumber, WhatsgateError
from whatsgate.domain.jid import Jid, normalize_phone


@pytest.mark.parametrize(
    "text",
    [
        "+55 (66) 99628-5154",
        "5566996285154",
        "55 66 99628 5154",
        "+55.66.99628.5154",
        "0055 66 99628-5154",
        "  +55 66 996285154  ",
        "5566996285154@s.whatsapp.net",
        "5566996285154:12@s.whatsapp.net",
        "5566996285154.0:7@s.whatsapp.net",
        "5566996285154@c.us",
    ],
)
def test_human_and_wire_forms_of_one_number_give_one_jid(text: str) -> None:
    assert str(Jid.parse(text)) == "5566996285154@s.whatsapp.net"


def test_groups_lids_and_their_questions() -> None:
    group = Jid.parse("120363025246125486@g.us")
    assert group.is_group and not group.is_user and group.phone_number is None
    legacy_group = Jid.parse("5566996285154-1612345678@g.us")
    assert legacy_group.is_group
    lid = Jid.parse("271234567890123:5@lid")
    assert lid.is_lid and str(lid) == "271234567890123@lid"
    assert Jid.parse("5566996285154@s.whatsapp.net").phone_number == "5566996285154"


def test_digits_are_kept_as_given() -> None:
    # The Brazilian ninth digit is neither dropped nor added: the engine resolves it later.
    assert normalize_phone("+55 66 9628-5154") == "556696285154"
    assert normalize_phone("+55 66 99628-5154") == "5566996285154"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", InvalidPhoneNumber),
        ("hello", InvalidPhoneNumber),
        ("+55 66 9962a-5154", InvalidPhoneNumber),
        ("123", InvalidPhoneNumber),
        ("+1234567890123456789", InvalidPhoneNumber),
        ("55+66996285154", InvalidPhoneNumber),
        ("+999 1234567", InvalidPhoneNumber),
        ("5566996285154@example.com", InvalidJid),
        ("abc@s.whatsapp.net", InvalidJid),
        ("@s.whatsapp.net", InvalidJid),
        ("group@g.us", InvalidJid),
    ],
)
def test_invalid_input_raises_a_domain_error(text: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        Jid.parse(text)


REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)


@st.composite
def example_numbers(draw: st.DrawFn) -> phonenumbers.PhoneNumber:
    region = draw(st.sampled_from(REGIONS))
    number = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    if number is None:
        number = phonenumbers.example_number(region)
    assert number is not None
    return number


FORMATS = [
    phonenumbers.PhoneNumberFormat.E164,
    phonenumbers.PhoneNumberFormat.INTERNATIONAL,
]


@given(example_numbers(), st.sampled_from(FORMATS), st.sampled_from(["", " ", "  "]))
def test_any_real_number_in_any_international_format_normalises_to_its_digits(
    number: phonenumbers.PhoneNumber, fmt: int, pad: str
) -> None:
    text = pad + phonenumbers.format_number(number, fmt) + pad
    digits = f"{number.country_code}{number.national_number}"
    if number.italian_leading_zero:
        digits = f"{number.country_code}{'0' * (number.number_of_leading_zeros or 1)}"
        digits += str(number.national_number)
    jid = Jid.parse(text)
    assert jid.is_user
    assert jid.user == digits
    # The JID is stable: parsing its own string form gives it back.
    assert Jid.parse(str(jid)) == jid


@given(st.text(max_size=40))
def test_arbitrary_text_is_a_jid_or_a_whatsgate_error_never_anything_else(text: str) -> None:
    try:
        jid = Jid.parse(text)
    except WhatsgateError:
        return
    assert Jid.parse(str(jid)) == jid
    assert "@" in str(jid)


@given(st.from_regex(r"\+?[0-9 ()\-.]{0,30}", fullmatch=True))
def test_phone_like_text_never_passes_through_unvalidated(text: str) -> None:
    try:
        digits = normalize_phone(text)
    except InvalidPhoneNumber:
        return
    assert digits.isdigit() and 7 <= len(digits) <= 15
    assert phonenumbers.is_possible_number(phonenumbers.parse("+" + digits))

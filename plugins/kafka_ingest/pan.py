"""Card numbers (PANs): the one policy for recognising and masking them, wherever text leaves us.

Topics mask their card-number columns with :func:`mask_card_number`; the DLQ module also runs
:func:`scrub_pans` over free text (a raw line that could not be split into columns, an error
message), so a card number cannot leak through a column nobody declared sensitive.
"""

from __future__ import annotations

import re

_NOT_DIGIT = re.compile(r"[^0-9]")
_PAN_CANDIDATE = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){11,18}(?![0-9])")


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a string of ASCII digits."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def mask_card_number(value: str) -> str:
    """Mask a card number, or anything that might be one, to at most its last four digits.

    Only ASCII digits are kept; separators and junk are dropped so their layout cannot hint at the
    number. At least four ``*`` always lead, and a value with four digits or fewer shows none of
    them, so even a short fragment is never shown whole: ``4111-1111-1111-1111`` ->
    ``************1111``, ``12`` -> ``****``.
    """
    digits = _NOT_DIGIT.sub("", value)
    shown = digits[-4:] if len(digits) > 4 else ""
    return "*" * max(len(digits) - 4, 4) + shown


def scrub_pans(text: str) -> str:
    """Mask anything in free text that looks like a card number: 12-19 digits, Luhn-valid.

    Long digit strings that fail the Luhn check (order numbers, ids) are left alone.
    """
    if not any(char.isdigit() for char in text):
        return text

    def _mask(match: re.Match[str]) -> str:
        candidate = match.group(0)
        return mask_card_number(candidate) if luhn_valid(_NOT_DIGIT.sub("", candidate)) else candidate

    return _PAN_CANDIDATE.sub(_mask, text)

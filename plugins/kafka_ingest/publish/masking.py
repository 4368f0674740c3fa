"""Card numbers (PANs): the one policy for recognising and masking them, wherever text leaves us.

Topics mask their card-number columns with :func:`mask_card_number`; the DLQ module also runs
:func:`scrub_pans` over free text (a raw line that could not be split into columns, an error
message), so a card number cannot leak through a column nobody declared sensitive.
"""

from __future__ import annotations

import re

_NOT_DIGIT = re.compile(r"[^0-9]")
#: Digit groups joined by dashes: one number. Spaces may join numbers, so spans split only there.
_DASHED_BLOCK = re.compile(r"[0-9]+(?:-[0-9]+)*")
#: Digit groups joined by single spaces or dashes: where a card number can hide.
_DIGIT_RUN = re.compile(r"[0-9]+(?:[ -][0-9]+)*")
#: For :func:`may_hold_pans`: each ASCII digit byte becomes ``0``, every other byte ``x``.
_DIGITS_AS_ZEROS = bytes(ord("0") if ord("0") <= byte <= ord("9") else ord("x") for byte in range(256))


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

    Digits may be grouped by single spaces or dashes, and a card number may sit right next to
    other numbers (``4111111111111111 12.00``): within each run of digit groups, the longest
    span of whole space-separated blocks that is a Luhn-valid 12-19 digit number is masked, then
    the rest of the run is searched the same way. Dashes bind groups into one number (so a
    dashed id is judged whole), and long digit strings that fail the Luhn check (order numbers,
    ids) are left alone.
    """
    if not may_hold_pans(text):
        return text
    return _DIGIT_RUN.sub(lambda run: _mask_run(run.group(0)), text)


def may_hold_pans(text: str) -> bool:
    """Whether :func:`scrub_pans` could change ``text``, or any text that ``text`` holds verbatim
    (a JSON document holds its strings so, but for escapes: no escape stands for a digit, space or
    dash, and the digits an escape like ``\u0012`` adds can only make the answer yes).

    False only when, with every space and dash removed, no twelve digits are left in a row; a card
    number's digits (at most one space or dash between two of them) always would be. The check
    runs in C over the UTF-8 bytes (no multi-byte character holds an ASCII byte), an order of
    magnitude cheaper than a regex scan for ``[0-9](?:[ -]?[0-9]){11}`` (docs/performance.md).
    """
    digits = text.encode("utf-8", "surrogatepass").translate(_DIGITS_AS_ZEROS, b" -")
    return b"000000000000" in digits


def _mask_run(run: str) -> str:
    groups = [(m.start(), m.end()) for m in _DASHED_BLOCK.finditer(run)]
    out, cursor, index = [], 0, 0
    while index < len(groups):
        end = _longest_pan(run, groups, index)
        if end is None:
            index += 1
            continue
        start, stop = groups[index][0], groups[end][1]
        out += [run[cursor:start], mask_card_number(run[start:stop])]
        cursor, index = stop, end + 1
    return "".join([*out, run[cursor:]])


def _longest_pan(run: str, groups: list[tuple[int, int]], first: int) -> int | None:
    """The last block index of the longest Luhn-valid 12-19 digit span starting at ``first``."""
    for last in range(min(len(groups), first + 19) - 1, first - 1, -1):
        digits = _NOT_DIGIT.sub("", run[groups[first][0] : groups[last][1]])
        if 12 <= len(digits) <= 19 and luhn_valid(digits):
            return last
    return None

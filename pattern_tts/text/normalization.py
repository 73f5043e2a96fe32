"""Rewrite what users type into words misaki reads naturally, keeping a map back to the original text.

misaki already reads plain numbers, decimals, currency (``$5.50``), ordinals (``2nd``), percentages,
years, decades and the common titles (``Dr.``, ``Mr.``, ``Mrs.``, ``Prof.``). The rules below add only
what it gets wrong; each rule is one row of :data:`RULES` (name, regex, rewrite function), applied in
order, and a later rule never touches text an earlier rule matched.

>>> normalize_text("Meet me at 3:30 pm on 1/15/2024.")
'Meet me at three thirty PM on January 15th, 2024.'
>>> normalize_text("Mail john.doe@example.com or see https://www.example.com/docs.")
'Mail john dot doe at example dot com or see WWW dot example dot com slash docs.'
>>> normalize_text("Dr. Smith lives at 12 Main St. near St. Louis, e.g. there.")
'Dr. Smith lives at 12 Main Street near Saint Louis, for example there.'
>>> normalize_text("Add 1 1/2 cups at 25°C.", british=True)
'Add 1 and one half cups at 25 degrees Celsius.'
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from misaki.en import CURRENCIES
from num2words import num2words

from .spans import Edit, OffsetMap

MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
MONTH_ABBREVIATIONS = {m[:3]: m for m in MONTHS} | {"Sept": "September"}
_MONTH_NAMES = {m: m for m in MONTHS} | MONTH_ABBREVIATIONS
_MONTH_RE = "|".join(sorted(_MONTH_NAMES, key=len, reverse=True))

# Symbols inside URLs and e-mail addresses.
ADDRESS_SYMBOLS = {
    ".": "dot", "/": "slash", "@": "at", "-": "dash", "_": "underscore", ":": "colon",
    "?": "question mark", "=": "equals", "&": "and", "#": "hash", "~": "tilde", "%": "percent",
    "+": "plus",
}  # fmt: skip
TOP_LEVEL_DOMAINS = (
    "com", "org", "net", "edu", "gov", "io", "ai", "dev", "app", "co", "uk", "us", "de", "fr", "eu",
    "info", "biz", "me", "tv", "ly", "gg", "xyz",
)  # fmt: skip

# Abbreviation -> expansion. Titles come before a capitalised name; the period is never a full stop.
TITLES = {
    "Gen.": "General", "Capt.": "Captain", "Lt.": "Lieutenant", "Sgt.": "Sergeant",
    "Col.": "Colonel", "Gov.": "Governor", "Sen.": "Senator", "Rep.": "Representative",
    "Rev.": "Reverend", "Hon.": "Honorable", "Pres.": "President", "Mt.": "Mount", "Ft.": "Fort",
}  # fmt: skip
# After a capitalised word (``Main St.``, ``John Smith Jr.``).
NAME_SUFFIXES = {
    "St": "Street", "Ave": "Avenue", "Blvd": "Boulevard", "Rd": "Road", "Ln": "Lane",
    "Dr": "Drive", "Hwy": "Highway", "Pkwy": "Parkway", "Ct": "Court", "Jr": "Junior", "Sr": "Senior",
}  # fmt: skip
# Anywhere; keys lower case, matched case-insensitively, the first letter's case kept.
GENERAL_ABBREVIATIONS = {
    "e.g.": "for example", "i.e.": "that is", "vs.": "versus", "vs": "versus",
    "approx.": "approximately", "inc.": "Incorporated", "corp.": "Corporation",
}  # fmt: skip
CAN_END_SENTENCE = frozenset({"inc.", "corp."})  # their period may also be a full stop
TEMPERATURE_UNITS = {"C": "Celsius", "F": "Fahrenheit", "K": "Kelvin"}
DENOMINATORS = {2: ("half", "halves"), 4: ("quarter", "quarters")}
# Numbers: misaki's lexicon names the powers of a thousand up to octillion (30 digits); num2words
# raises past 10**303. Digit strings longer than LONGEST_QUANTITY are read digit by digit.
# A cardinal's separators: 1,000,000 or the Indian 10,00,000.
CARDINAL_GROUPING = re.compile(r"\d{1,3}(?:,\d{3})+|\d{1,2}(?:,\d{2})+,\d{3}")
LONGEST_CARDINAL = 30
LONGEST_QUANTITY = 15

# A rule returning this keeps the matched text as it is and hides it from later rules.
PROTECT = "\x00protect"

_URL_END = r"[^\s<>\"'.,;:!?)\]]"
_URL_BODY = r"[^\s<>\"]*" + _URL_END


@dataclass(frozen=True)
class Context:
    """What a rule may look at besides its match."""

    text: str
    british: bool


Rewrite = Callable[[re.Match[str], Context], str | None]


@dataclass(frozen=True)
class Rule:
    """One row of the table: text matching ``pattern`` is rewritten by ``rewrite`` (None: left as is)."""

    name: str
    pattern: re.Pattern[str]
    rewrite: Rewrite


def ordinal_suffix(n: int) -> str:
    """``1`` -> ``st``, ``12`` -> ``th``, ``23`` -> ``rd``."""
    if 10 <= n % 100 <= 20:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def _words(n: int) -> str:
    return str(num2words(n))


def spell_address(address: str) -> str:
    """Words for a URL or e-mail address: ``a.b/c`` -> ``a dot b slash c``; ``www`` is spelled out."""
    parts = []
    for piece in re.findall(r"[A-Za-z]+|\d+|\S", address):
        if piece.isalnum():
            parts.append("WWW" if piece.lower() == "www" else piece)
        elif piece in ADDRESS_SYMBOLS:
            parts.append(ADDRESS_SYMBOLS[piece])
    return " ".join(parts)


def _keep_case(source: str, expansion: str) -> str:
    return expansion[0].upper() + expansion[1:] if source[:1].isupper() else expansion


def _full_stop_follows(ctx: Context, end: int) -> bool:
    """Whether an abbreviation's period at ``end - 1`` also ends the sentence."""
    rest = ctx.text[end:]
    stripped = rest.lstrip(" \t")
    return not stripped or stripped[0] == "\n" or (stripped[0].isupper() and rest[:1].isspace())


def _previous_word(ctx: Context, start: int) -> tuple[str, bool]:
    """The word before ``start`` (a comma may sit between) and whether it starts a sentence."""
    window_start = max(0, start - 80)
    window = ctx.text[window_start:start]
    match = re.search(r"([\w'’]+)[ \t]*,?[ \t]*$", window)
    if not match:
        return "", False
    before = window[: match.start()].rstrip(" \t")
    sentence_start = before[-1] in ".!?\n" if before else window_start == 0
    return match.group(1), sentence_start


def _next_word(ctx: Context, end: int) -> str:
    match = re.match(r"[ \t]*([\w'’]+)", ctx.text[end:])
    return match.group(1) if match else ""


# --- rewrite functions, one per rule ----------------------------------------------------------


def _protect(m: re.Match[str], ctx: Context) -> str | None:
    return PROTECT


def _email(m: re.Match[str], ctx: Context) -> str | None:
    return spell_address(m.group(0))


def _url(m: re.Match[str], ctx: Context) -> str | None:
    url = re.sub(r"^[A-Za-z][A-Za-z0-9+.-]*://", "", m.group(0)).rstrip("/")
    return spell_address(url)


def _phone(m: re.Match[str], ctx: Context) -> str | None:
    groups = re.findall(r"\d+", m.group(0))
    return ", ".join(_spoken_digits(group) for group in groups)


def _spoken_digits(digits: str) -> str:
    """Each digit as a word: ``"4111"`` -> ``"four one one one"``."""
    return " ".join(_words(int(d)) for d in digits)


def _digit_string(digits: str) -> str:
    """``digits`` as misaki should read them: as they are up to LONGEST_QUANTITY, else one by one in fours."""
    if len(digits) <= LONGEST_QUANTITY:
        return digits
    return ", ".join(_spoken_digits(digits[i : i + 4]) for i in range(0, len(digits), 4))


def _digit_groups(m: re.Match[str], ctx: Context) -> str | None:
    """Digits joined by commas that are not a cardinal misaki can read: a list, or a huge number."""
    number = m.group(0)
    if not CARDINAL_GROUPING.fullmatch(number):
        # 1,2,3 -> 1, 2, 3 (misaki reads "one hundred twenty three")
        return ", ".join(_digit_string(group) for group in number.split(","))
    if len(number.replace(",", "")) <= LONGEST_CARDINAL:
        return None  # 1,000,000: misaki reads it
    return ", ".join(_spoken_digits(group) for group in number.split(","))  # past octillion


def _long_digits(m: re.Match[str], ctx: Context) -> str | None:
    """A digit string too long to be a quantity (a card number, an ID): digit by digit, in fours.

    A decimal part is read digit by digit after "point"; a currency sign before the number is read
    after it (misaki would name the currency after every word).
    """
    currency, digits, fraction = m.group(1), m.group(2), m.group(3)
    words = _digit_string(digits) + (f" point {_spoken_digits(fraction)}" if fraction else "")
    words += f" {CURRENCIES[currency][0]}s" if currency else ""
    before, after = ctx.text[m.start() - 1 : m.start()], ctx.text[m.end() : m.end() + 1]
    return (" " if before.isalpha() else "") + words + (" " if after.isalnum() else "")


def _date(year: str, month: int, day: int, ctx: Context) -> str | None:
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    name = MONTHS[month - 1]
    if ctx.british:
        return f"the {day}{ordinal_suffix(day)} of {name} {year}"
    return f"{name} {day}{ordinal_suffix(day)}, {year}"


def _date_iso(m: re.Match[str], ctx: Context) -> str | None:
    return _date(m.group(1), int(m.group(2)), int(m.group(3)), ctx)


def _date_numeric(m: re.Match[str], ctx: Context) -> str | None:
    first, second = int(m.group(1)), int(m.group(2))
    month, day = (second, first) if ctx.british else (first, second)
    if month > 12 and day <= 12:
        month, day = day, month
    return _date(m.group(3), month, day, ctx)


def _time(m: re.Match[str], ctx: Context) -> str | None:
    hour, minute, meridiem = int(m.group(1)), int(m.group(2)), m.group(3)
    if meridiem and not 1 <= hour <= 12:
        return None
    words = [_words(hour)]
    if minute == 0 and not meridiem:
        words.append("o'clock" if 1 <= hour <= 12 else "hundred")
    elif 0 < minute < 10:
        words.append(f"oh {_words(minute)}")
    elif minute:
        words.append(_words(minute))
    if meridiem:
        words.append(meridiem[0].upper() + "M")
    return " ".join(words)


def _month_day(m: re.Match[str], ctx: Context) -> str | None:
    month, day, suffix = _MONTH_NAMES[m.group(1)], int(m.group(3)), m.group(4)
    if not 1 <= day <= 31 or (month == m.group(1) and suffix):
        return None
    return f"{month} {day}{suffix or ordinal_suffix(day)}"


def _day_month_year(m: re.Match[str], ctx: Context) -> str | None:
    day = int(m.group(1))
    if not 1 <= day <= 31:
        return None
    return f"the {day}{ordinal_suffix(day)} of {_MONTH_NAMES[m.group(2)]} {m.group(3)}"


def _fraction(m: re.Match[str], ctx: Context) -> str | None:
    whole, num, den = m.group(1), int(m.group(2)), int(m.group(3))
    if not 0 < num < den:
        return None
    singular, plural = DENOMINATORS.get(den) or (str(num2words(den, to="ordinal")),) * 2
    if den not in DENOMINATORS and num > 1:
        plural += "s"
    words = f"{_words(num)} {singular if num == 1 else plural}"
    return f"{whole} and {words}" if whole else words


def _temperature(m: re.Match[str], ctx: Context) -> str | None:
    return f" degrees {TEMPERATURE_UNITS[m.group(1)]}"


def _title(m: re.Match[str], ctx: Context) -> str | None:
    return TITLES[m.group(1)]


def _name_suffix(m: re.Match[str], ctx: Context) -> str | None:
    abbr, dot = m.group(1), m.group(2)
    prev, sentence_start = _previous_word(ctx, m.start())
    after_name = prev[:1].isupper()
    before_name = _next_word(ctx, m.end())[:1].isupper()
    if abbr == "St" and before_name and not (after_name and not sentence_start):
        return "Saint"  # St. Louis, went to St. Louis
    if not after_name or (abbr == "Dr" and before_name):
        return None  # Dr. Smith: misaki reads "doctor"
    expansion = NAME_SUFFIXES[abbr]
    return expansion + "." if dot and _full_stop_follows(ctx, m.end()) else expansion


def _general(m: re.Match[str], ctx: Context) -> str | None:
    source = m.group(0).lower()
    expansion = _keep_case(m.group(0), GENERAL_ABBREVIATIONS[source])
    return expansion + "." if source in CAN_END_SENTENCE and _full_stop_follows(ctx, m.end()) else expansion


def _abbreviation_pattern(keys: list[str]) -> str:
    return "|".join(re.escape(k) for k in sorted(keys, key=len, reverse=True))


RULES: tuple[Rule, ...] = (
    # misaki's own markup: [word](/phonemes/) -- left exactly as typed.
    Rule("misaki_link", re.compile(r"\[[^\]]+\]\([^)]*\)"), _protect),
    # Runs of spaces, tabs and other blanks -> one space (extra spaces trip misaki's link alignment).
    Rule("whitespace", re.compile(r"\s{2,}|[^\S ]"), lambda m, ctx: " "),
    Rule("email", re.compile(r"\b[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+\b"), _email),
    Rule("url", re.compile(r"\b(?:[A-Za-z][A-Za-z0-9+.-]*://|www\.)" + _URL_BODY), _url),
    Rule(
        "domain",
        re.compile(
            r"\b(?:[A-Za-z0-9-]+\.)+(?:" + "|".join(TOP_LEVEL_DOMAINS) + r")\b(?:/" + _URL_BODY + r"|/)?"
        ),
        _url,
    ),
    Rule(
        "phone",
        re.compile(r"(?<![\d-])(?:\(\d{3}\) ?|\d{3}[-.])\d{3}[-.]\d{4}(?![\d-])"),
        _phone,
    ),
    Rule("date_iso", re.compile(r"(?<![\d-])(\d{4})-(\d{2})-(\d{2})(?![\d-])"), _date_iso),
    Rule("date_numeric", re.compile(r"(?<![\d/])(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})(?![\d/])"), _date_numeric),
    Rule(
        "time",
        re.compile(r"(?<![\d:.])([01]?\d|2[0-3]):([0-5]\d)(?![\d:])(?:\s?([AaPp])[Mm]\b)?"),
        _time,
    ),
    Rule(
        "day_month_year",
        re.compile(r"\b(\d{1,2}) (" + _MONTH_RE + r")\.?,? (\d{4})\b"),
        _day_month_year,
    ),
    Rule(
        "month_day",
        re.compile(r"\b(" + _MONTH_RE + r")(\.?) (\d{1,2})(st|nd|rd|th)?\b(?![:.,/]?\d)"),
        _month_day,
    ),
    # misaki reads a leading minus only sometimes ("said -3" comes out silent).
    Rule("minus", re.compile(r"(?<![\w.,/-])-(?=\d)"), lambda m, ctx: "minus "),
    Rule("fraction", re.compile(r"(?<![\d/.])(?:(\d+) )?([1-9])/([2-9]|10)(?![\d/])"), _fraction),
    # Digits joined by commas: a list ("1,2,3") or a number too big to name. misaki reads any of them
    # as one cardinal ("one hundred twenty three"), and fails past 10**303.
    Rule("digit_groups", re.compile(r"(?<![\d.,])\d+(?:,\d+)+(?!\d)"), _digit_groups),
    Rule(
        "long_digits",
        re.compile(rf"(?<![\d.,])([{''.join(CURRENCIES)}]?)(\d{{{LONGEST_QUANTITY + 1},}})(?:\.(\d+))?"),
        _long_digits,
    ),
    Rule("temperature", re.compile(r"(?<=\d) ?° ?([CFK])\b"), _temperature),
    Rule("title", re.compile(r"\b(" + _abbreviation_pattern(list(TITLES)) + r")(?= [A-Z])"), _title),
    Rule(
        "name_suffix",
        re.compile(r"\b(" + "|".join(NAME_SUFFIXES) + r")(\.|\b)(?![\w'’-])"),
        _name_suffix,
    ),
    Rule(
        "general",
        re.compile(
            r"(?<![\w.])(?:" + _abbreviation_pattern(list(GENERAL_ABBREVIATIONS)) + r")(?!\w)", re.IGNORECASE
        ),
        _general,
    ),
)


def rewrites(text: str, *, british: bool = False) -> list[Edit]:
    """The edits :data:`RULES` make to ``text`` (non-overlapping, in order)."""
    ctx = Context(text, british)
    claimed: list[tuple[int, int]] = []
    edits: list[Edit] = []
    for rule in RULES:
        for m in rule.pattern.finditer(text):
            start, end = m.span()
            if start == end or any(start < e and s < end for s, e in claimed):
                continue
            replacement = rule.rewrite(m, ctx)
            if replacement is None:
                continue
            claimed.append((start, end))
            if replacement != PROTECT and replacement != m.group(0):
                edits.append(Edit(start, end, replacement))
    return sorted(edits, key=lambda e: e.start)


def normalize(text: str, *, british: bool = False) -> OffsetMap:
    """``text`` rewritten for G2P, with the map from its spans back to ``text``."""
    return OffsetMap.apply(text, rewrites(text, british=british))


def normalize_text(text: str, *, british: bool = False) -> str:
    """Only the rewritten text of :func:`normalize`."""
    return normalize(text, british=british).text

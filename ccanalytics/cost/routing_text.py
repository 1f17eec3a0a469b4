"""The model router's view of an utterance: patterns compiled on first use, and the normalisation
(lowercase, one apostrophe, numbers said in words as digits, punctuation dropped)."""

from __future__ import annotations

import re
from typing import Any


class LazyPattern:
    """A regular expression compiled on first use: importing the router compiles nothing (the rules'
    patterns take ≈ 15 ms to compile; the first ``route`` call pays it once)."""

    __slots__ = ("_compiled", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._compiled: re.Pattern[str] | None = None

    def _re(self) -> re.Pattern[str]:
        if self._compiled is None:
            self._compiled = re.compile(self.pattern)
        return self._compiled

    def search(self, text: str) -> re.Match[str] | None:
        return self._re().search(text)

    def fullmatch(self, text: str) -> re.Match[str] | None:
        return self._re().fullmatch(text)

    def findall(self, text: str) -> list[Any]:  # strings, or tuples of groups (as re.findall)
        return self._re().findall(text)


# ------------------------------------------------------------------------------------ normalisation
_UNITS = {
    "нуль": 0, "ноль": 0, "один": 1, "одна": 1, "одну": 1, "одно": 1, "два": 2, "дві": 2, "две": 2, "три": 3,
    "чотири": 4, "четыре": 4, "п'ять": 5, "пять": 5, "шість": 6, "шесть": 6, "сім": 7, "семь": 7,
    "вісім": 8, "восемь": 8, "дев'ять": 9, "девять": 9,
}  # fmt: skip
_TEENS = {
    "десять": 10, "одинадцять": 11, "одиннадцать": 11, "дванадцять": 12, "двенадцать": 12,
    "тринадцять": 13, "тринадцать": 13, "чотирнадцять": 14, "четырнадцать": 14, "п'ятнадцять": 15,
    "пятнадцять": 15, "пятнадцать": 15, "шістнадцять": 16, "шестнадцать": 16, "сімнадцять": 17,
    "семнадцать": 17, "вісімнадцять": 18, "восемнадцать": 18, "дев'ятнадцять": 19, "девятнадцать": 19,
}  # fmt: skip
_TENS = {
    "двадцять": 20, "двадцать": 20, "тридцять": 30, "тридцать": 30, "сорок": 40, "п'ятдесят": 50,
    "пятдесят": 50, "пятьдесят": 50, "шістдесят": 60, "шестьдесят": 60, "сімдесят": 70, "семьдесят": 70,
    "вісімдесят": 80, "восемьдесят": 80, "дев'яносто": 90, "девяносто": 90,
}  # fmt: skip
_HUNDREDS = {
    "сто": 100, "двісті": 200, "двести": 200, "триста": 300, "чотириста": 400, "четыреста": 400,
    "п'ятсот": 500, "пятсот": 500, "пятьсот": 500, "шістсот": 600, "шестьсот": 600, "сімсот": 700,
    "семьсот": 700, "вісімсот": 800, "восемьсот": 800, "дев'ятсот": 900, "девятьсот": 900,
}  # fmt: skip
_THOUSAND = {"тисяча", "тисячі", "тисяч", "тысяча", "тысячи", "тысяч"}
# ordinals a size or a year is said with: «шістнадцятий радіус», «вісімнадцятого року»
_ORDINAL = LazyPattern(
    r"(дванадцят|тринадцят|чотирнадцят|п'?ятнадцят|шістнадцят|сімнадцят|вісімнадцят|дев'?ятнадцят|двадцят"
    r"|двенадцат|тринадцат|четырнадцат|пятнадцат|шестнадцат|семнадцат|восемнадцат|девятнадцат|двадцат)"
    r"(?:ий|ого|ому|им|ім|ый|ой|ом|ая|а|у|ою)"
)
_ORDINAL_VALUE = {
    "дванадцят": 12, "тринадцят": 13, "чотирнадцят": 14, "п'ятнадцят": 15, "пятнадцят": 15, "шістнадцят": 16,
    "сімнадцят": 17, "вісімнадцят": 18, "дев'ятнадцят": 19, "девятнадцят": 19, "двадцят": 20,
    "двенадцат": 12, "тринадцат": 13, "четырнадцат": 14, "пятнадцат": 15, "шестнадцат": 16,
    "семнадцат": 17, "восемнадцат": 18, "девятнадцат": 19, "двадцат": 20,
}  # fmt: skip
# (words, the place a word fills, the smallest place it may follow in the same number)
_PLACES = ((_HUNDREDS, 100, 1000), (_TENS, 10, 100), (_TEENS, 1, 100), (_UNITS, 1, 10))
_TOKEN = LazyPattern(r"[a-zа-яіїєґ']+|\d+")


def _number_words(tokens: list[str]) -> list[str]:
    """Numbers said in words → digits. A number ends where the next word cannot continue it:
    «двісті чотири п'ятсот вісімнадцять» → 204 518, «двісті чотири тисячі п'ятсот вісімнадцять» → 204518."""
    out: list[str] = []
    value, last, thousands = 0, 0, False  # last: the place the number filled last (0 = no number open)

    def close() -> None:
        nonlocal value, last, thousands
        if last:
            out.append(str(value))
        value, last, thousands = 0, 0, False

    for tok in tokens:
        if tok in _THOUSAND:
            if last and not thousands:
                value, last, thousands = value * 1000, 1000, True
            elif not last:
                value, last, thousands = 1000, 1000, True
            else:
                close()
                out.append(tok)
            continue
        ordinal = _ORDINAL.fullmatch(tok)
        if ordinal:
            close()
            out.append(str(_ORDINAL_VALUE[ordinal.group(1)]))
            continue
        for table, place, after in _PLACES:
            if tok in table:
                if last and last < after:
                    close()
                value, last = value + table[tok], place
                break
        else:
            close()
            out.append(tok)
    close()
    return out


def normalise(text: str | None) -> str:
    """The router's view of an utterance: lowercase, ё → е, one apostrophe, numbers in words as
    digits, punctuation dropped, single spaces."""
    text = re.sub(r"[’ʼ`ʻ‘]", "'", (text or "").lower().replace("ё", "е"))
    tokens = [t.strip("'") for t in _TOKEN.findall(text)]
    return " ".join(_number_words([t for t in tokens if t]))

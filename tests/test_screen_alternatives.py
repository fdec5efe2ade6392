"""Screens scanned one top-level alternative at a time (nanlint/rules/_screens.py: ``Screen``): the same
matches as the joined regex for the first stage, and a superset of its starts for the second."""
from __future__ import annotations

import re

import pytest

from test_screens import sources

from nanlint.rules import ALL_RULES, _screens
from nanlint.rules._screens import Screen, WithFileCondition, alternatives
from nanlint.rules._screens import _self_product


def screens() -> list[tuple[str, Screen]]:
    out = []
    for rule in ALL_RULES:
        screen = rule.screen.pattern if isinstance(rule.screen, WithFileCondition) else rule.screen
        if isinstance(screen, Screen):
            out.append((rule.code, screen))
    return out


def test_most_screens_are_scanned_by_alternatives():
    assert len([s for _, s in screens() if len(s.parts) > 1]) >= 15


@pytest.mark.parametrize("code,screen", screens(), ids=[c for c, _ in screens()])
def test_a_screen_matches_where_its_joined_regex_does(code: str, screen: Screen,
                                                     monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(_screens, "_PAYS_OFF", 0)  # by the alternatives from the first text on
    monkeypatch.setattr(_screens, "_SHORT", 0)
    checked = 0
    for path in sources():
        text = path.read_text(encoding="utf-8")
        joined = screen.pattern.search(text)
        found = screen.search(text)
        assert (found and found.span()) == (joined and joined.span()), path
        starts = [m.start() for m in screen.finditer(text)]
        assert starts == sorted(set(starts))
        assert {m.start() for m in screen.pattern.finditer(text)} <= set(starts), path
        assert all(screen.pattern.match(text, start) for start in starts), path
        checked += bool(joined)
    assert checked


@pytest.mark.parametrize("by_parts", [True, False], ids=["by-alternatives", "joined"])
def test_starts_shared_between_screens_are_those_of_finditer(by_parts: bool, monkeypatch: pytest.MonkeyPatch):
    """``screen_starts`` with one ``shared`` dict per text (what the engine does) gives every rule's screen the
    starts its own ``finditer`` gives, though eight screens hold ``torch\\s+as\\s+...`` and scan it once."""
    if by_parts:
        monkeypatch.setattr(_screens, "_PAYS_OFF", 0)
        monkeypatch.setattr(_screens, "_SHORT", 0)
    every = [rule.screen for rule in ALL_RULES]
    reused = 0
    for path in sources():
        text = path.read_text(encoding="utf-8")
        shared: dict = {}
        for screen in every:
            before = len(shared)
            assert _screens.screen_starts(screen, text, shared) == [m.start() for m in screen.finditer(text)], path
            reused += by_parts and isinstance(screen, Screen) and len(shared) - before < len(screen.parts)
    assert reused or not by_parts  # some screen found an alternative another had scanned


@pytest.mark.parametrize("pattern,flags,expected", [
    (r"a|b", 0, ["a", "b"]),
    (r"a(?:b|c)|d", 0, ["a(?:b|c)", "d"]),
    (r"[|]|\||x", 0, ["[|]", r"\|", "x"]),
    (r"[]|]|[^]|]|y", 0, ["[]|]", "[^]|]", "y"]),
    (r"[\]|]|z", 0, [r"[\]|]", "z"]),
    ("a  # a comment | not a cut\n| b", re.VERBOSE, ["a  # a comment | not a cut\n", " b"]),
    ("a # not a comment without VERBOSE | b", 0, ["a # not a comment without VERBOSE ", " b"]),
    (r"(a)|\1", 0, [r"(a)|\1"]),  # a backreference to another alternative's group: not cut
])
def test_alternatives_cut_a_pattern_at_its_top_level_bars(pattern: str, flags: int, expected: list[str]):
    assert alternatives(pattern, flags) == expected


def test_search_returns_the_joined_regexs_leftmost_match_and_its_first_matching_alternative(
        monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(_screens, "_PAYS_OFF", 0)
    screen = Screen(r"ab|abc|b")
    pad = "-" * 4096  # (a short text is scanned by the joined regex)
    assert screen.search(pad + "xxabc").span() == (4098, 4100)  # ``ab`` first, as the alternation tries it first
    assert [m.start() for m in screen.finditer(pad + "abc")] == [4096, 4097]  # ``b`` inside ``ab`` counts too
    assert [m.start() for m in screen.finditer("abc")] == [0]  # short: the joined regex's own starts
    assert screen.search(pad + "nothing here") is None and screen.search("abc", 1).span() == (1, 2)


@pytest.mark.parametrize("text", ["v * v", "v*v", "x = v * v + 1", "_v\t*\n_v", "é * é", "a.v * v", "xv * v",
                                  "v * vx", "v ** v", "a * b", "2 * 2", "* v", "v *"])
def test_a_self_product_is_found_as_its_regex_finds_it(text: str):
    regex = re.compile(r"(?<![\w.])(\w++)\s*+[*]\s*+\1(?!\w)")
    assert _self_product(text) == bool(regex.search(text))


def test_the_alternatives_are_compiled_once_the_joined_regex_has_scanned_enough_text():
    screen = Screen(r"ab|b")
    text = "-" * 4096 + "ab"
    for _ in range(_screens._PAYS_OFF // len(text)):
        assert [m.start() for m in screen.finditer(text)] == [4096]  # the joined regex's own starts
    assert screen._parts is None
    assert [m.start() for m in screen.finditer(text)] == [4096, 4097]  # now by the alternatives
    assert screen._parts is not None


@pytest.mark.parametrize("piece,flags,head", [
    (r"[nN][aA][nN]\b", 0, "nan"),
    (r"[iI][nN][fF](?:[iI][nN][iI][tT][yY])?\b", 0, "inf"),
    ("\n  [nN][oO][rR][mM]  # verbose\n", re.VERBOSE, "norm"),
    ("\n  [nN][oO]", 0, None),  # without VERBOSE the newline is a literal
    (r"[nN]an", 0, None),  # one letter: too common to look for
    (r"[nN][Aa]", 0, None),  # not the lower/upper pair the heads are written as
    (r"[ab][cd]", 0, None),
    (r"nan", 0, None),
])
def test_a_caseless_head_is_the_word_a_piece_begins_with_in_any_case(piece: str, flags: int, head):
    assert _screens.caseless_head(piece, flags) == head


@pytest.mark.parametrize("text", [
    "x == NaN or y != nan and z == NAN, nAn", "float('nan') # nan",
    "\u0130 nan NaN",  # ``İ`` lowers to two characters: every later position would move, so the scan is plain
    "\u212aey nan",  # the Kelvin sign lowers to ``k``: an occurrence ``[kK][eE][yY]`` must reject
    "banana nanny", "",
])
def test_starts_found_by_a_caseless_head_are_the_joined_regexs(text: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(_screens, "_PAYS_OFF", 0)
    monkeypatch.setattr(_screens, "_SHORT", 0)
    screen = Screen(r"[nN][aA][nN]\b|[kK][eE][yY]|#")
    pattern = screen.pattern
    every = [at for at in range(len(text) + 1) if pattern.match(text, at)]
    assert screen.starts(text) == every
    assert screen.starts(text, {}) == every

"""Every kiosk string exists in English and Simplified Chinese with the same placeholders."""

from __future__ import annotations

import string

import pytest

from kiosk.i18n import LANGUAGES, entry, keys, other_language, translate


def _fields(text: str) -> set[str]:
    """The ``{name}`` placeholders in ``text``."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.mark.parametrize("key", keys())
def test_every_string_in_both_languages(key: str) -> None:
    """No empty translation; no placeholder one language has and the other lacks."""
    texts = entry(key)
    assert all(texts.get(lang, "").strip() for lang in LANGUAGES), key
    assert _fields(texts["en"]) == _fields(texts["zh"]), key


def test_translate_fills_values_and_toggles() -> None:
    """Values go into the sentence; the toggle goes en -> zh -> en."""
    assert translate("points_value", "zh", points=45) == "45 积分"
    assert other_language(other_language("en")) == "en" and other_language("en") == "zh"
    with pytest.raises(KeyError):
        translate("no-such-key", "en")

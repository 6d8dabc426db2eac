"""Properties of the config value parser (lib/config.py): every kind round-trips through ``--set`` text,
and any text or value for any key gives either a value of the declared kind or a ConfigError that names
the key, never another exception."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from lib.config import SCHEMA, ConfigError, Setting, _coerce, load_config, parse_set
from tests.support.properties import PURE

BASE = Path("/nonexistent-aria-props")  # --set paths resolve against this; nothing is created
KEYS = {kind: [(f"{section}.{key}", setting) for section, keys in SCHEMA.items() for key, setting in keys.items()
               if setting.kind == kind] for kind in ("int", "float", "bool", "path", "str")}
# Any key, each kind equally likely (free-form spark_conf counts as one more kind).
ANY_KEY = st.sampled_from([*KEYS, "spark_conf"]).flatmap(
    lambda kind: st.just("spark_conf.spark.sql.adaptive.enabled") if kind == "spark_conf"
    else st.sampled_from([name for name, _ in KEYS[kind]]))
TEXT = st.text(st.characters(codec="utf-8"), max_size=30)


def coerce_set(name: str, setting: Setting, text: str) -> object:
    """What ``--set name=text`` makes of ``text`` for this setting."""
    section, key, raw = parse_set(f"{name}={text}")
    return _coerce(setting, raw, f"{section}.{key}", "--set", BASE, from_text=True)


@st.composite
def int_setting(draw: st.DrawFn) -> tuple[str, Setting, int]:
    name, setting = draw(st.sampled_from(KEYS["int"]))
    low = -(10**30) if setting.minimum is None else math.ceil(setting.minimum)
    return name, setting, draw(st.integers(low, low + 10**30))


@PURE
@given(int_setting(), st.sampled_from(["{}", "{:_}", " {} "]))
def test_ints_round_trip(case, form):
    name, setting, value = case
    got = coerce_set(name, setting, form.format(value))
    assert got == value and type(got) is int


@st.composite
def float_setting(draw: st.DrawFn) -> tuple[str, Setting, float]:
    name, setting = draw(st.sampled_from(KEYS["float"]))
    value = draw(st.one_of(st.floats(min_value=setting.minimum, allow_nan=False, allow_infinity=False),
                           st.integers(0, 10**6).map(float)))
    assume(setting.minimum is None or value >= setting.minimum)
    return name, setting, value


@PURE
@given(float_setting())
def test_floats_round_trip(case):
    name, setting, value = case
    text = str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    got = coerce_set(name, setting, text)
    assert got == value and type(got) is float


@PURE
@given(st.sampled_from(KEYS["bool"]), st.sampled_from(["true", "yes", "1", "false", "no", "0"]), st.randoms())
def test_bools_round_trip(key, word, rng):
    name, setting = key
    text = "".join(c.upper() if rng.random() < 0.5 else c for c in word)
    assert coerce_set(name, setting, text) is (word in ("true", "yes", "1"))


SEGMENT = st.text(st.characters(codec="utf-8", exclude_characters="/\x00"), min_size=1, max_size=8).filter(
    lambda s: s not in (".", ".."))
RELATIVE = st.lists(SEGMENT, min_size=1, max_size=4).map("/".join).filter(lambda p: p == p.strip())


@PURE
@given(st.sampled_from(KEYS["path"]), RELATIVE, st.sampled_from(["relative", "absolute", "uri"]))
def test_paths_round_trip(key, path, form):
    name, setting = key
    if form == "relative":  # resolved against the folder the command runs in
        assert coerce_set(name, setting, path) == os.path.join(BASE, path)
    elif form == "absolute":
        assert coerce_set(name, setting, "/" + path) == "/" + path
    else:  # URIs are kept as written
        assert coerce_set(name, setting, f"s3a://{path}") == f"s3a://{path}"


ITEM = st.text(st.characters(codec="utf-8", exclude_characters=","), min_size=1, max_size=8).filter(
    lambda s: s == s.strip())


@PURE
@given(st.lists(ITEM, max_size=6))
def test_lists_round_trip(items):
    setting = Setting("str_list", [], "a list")
    assert _coerce(setting, ", ".join(items), "x.items", "--set", BASE, from_text=True) == items
    assert _coerce(setting, list(items), "x.items", "file", BASE, from_text=False) == items
    with pytest.raises(ConfigError, match="'x.items' expects a list of strings"):
        _coerce(setting, [*items, 1], "x.items", "file", BASE, from_text=False)


KIND_TYPES = {"int": int, "float": float, "bool": bool, "path": str, "str": str}
# Texts and values that tripped parsers before, tried on every key (below) besides the random ones.
TRICKY_TEXTS = ["nan", "NaN", "inf", "-inf", "1e999", "-0", "0x10", "1_000", "٣", "1.5", "", " ", "\x00", "a\x00b",
                "true", "None", "9" * 5000, "s3a://", "../..", "~"]
# What a TOML file or with_overrides can hand over: any scalar (TOML has nan, inf and integers of any size),
# lists and tables.
TRICKY_VALUES = [None, True, False, 0, -1, 1.5, math.nan, math.inf, -math.inf, 10**400, -(10**400), [], {}, [1],
                 ["a"], *TRICKY_TEXTS]
EVERY_KEY = [name for pairs in KEYS.values() for name, _ in pairs] + ["spark_conf.spark.sql.adaptive.enabled"]


def assert_typed_or_named(name: str, apply) -> None:
    """``apply()`` returns a config holding a value of the key's kind, or raises a ConfigError naming it."""
    try:
        config = apply()
    except ConfigError as error:
        assert f"'{name}'" in str(error), str(error)
        return
    value = config.get(name)
    section, key = name.split(".", 1)
    setting = SCHEMA[section].get(key)
    if setting is None:  # spark_conf: free-form text
        assert isinstance(value, str)
        return
    assert type(value) is KIND_TYPES[setting.kind], (name, value)
    if setting.kind == "float":
        assert math.isfinite(value), (name, value)
    if setting.minimum is not None and setting.kind in ("int", "float"):
        assert value >= setting.minimum
    if setting.choices:
        assert value in setting.choices


def set_text(name: str, text: str) -> None:
    assert_typed_or_named(name, lambda: load_config(use_default_file=False, sets=[f"{name}={text}"], base_dir=BASE))


def file_value(name: str, value: object) -> None:
    config = load_config(use_default_file=False, base_dir=BASE)
    assert_typed_or_named(name, lambda: config.with_overrides({name: value}, base_dir=BASE))


@PURE
@given(ANY_KEY, TEXT)
def test_any_set_text_gives_a_value_or_names_the_key(name, text):
    set_text(name, text)


@PURE
@given(ANY_KEY, st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT,
                          st.lists(st.one_of(st.integers(), TEXT), max_size=2),
                          st.dictionaries(TEXT, st.integers(), max_size=2)))
def test_any_file_value_gives_a_value_or_names_the_key(name, value):
    file_value(name, value)


def test_tricky_texts_and_values_on_every_key():
    for name in EVERY_KEY:
        for text in TRICKY_TEXTS:
            set_text(name, text)
        for value in TRICKY_VALUES:
            file_value(name, value)


@PURE
@given(TEXT)
def test_any_assignment_parses_or_is_a_config_error(assignment):
    try:
        section, key, _ = parse_set(assignment)
    except ConfigError:
        return
    assert f"{section}.{key}" in assignment
    try:
        load_config(use_default_file=False, sets=[assignment], base_dir=BASE)
    except ConfigError as error:
        assert section in str(error)

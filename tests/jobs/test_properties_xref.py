"""Properties of the cross-reference's normalisers (jobs/xref/text.py), each run as Spark expressions on one
small DataFrame per example (every example is a batch of values, so a few Spark queries cover many).

ISRC: ISO 3901 codes are 2 letters, 3 alphanumerics, 7 digits; "normalised" forgives letter case and
hyphens, spaces and dots (issue), nothing else. Folding: lower-case, accents removed, idempotent.
"""

from __future__ import annotations

import re
import string
import unicodedata

from hypothesis import given
from hypothesis import strategies as st
from pyspark.sql import functions as F

from jobs.xref import text
from tests.support.properties import SPARK

ISRC = re.compile(r"[A-Z]{2}[A-Z0-9]{3}[0-9]{7}")
CODES = st.from_regex(ISRC, fullmatch=True)
# Separators the normalisation must forgive: hyphens and dashes, spaces of every kind, full stops.
SEPARATORS = ["-", ".", " ", "\t", "\n", "\u00a0", "\u2002", "\u2003", "\u2009", "\u202f", "\u3000", "\u2010",
              "\u2011", "\u2012", "\u2013", "\u2014", "\u2015"]
# Characters that upper-case (in Java or Python) into ASCII letters, or look like ASCII letters and digits.
LOOKALIKES = ["ß", "ﬀ", "ﬁ", "ı", "ſ", "ǆ", "K", "Å", "０", "٣", "Ａ", "ａ", "ｇ", "é", "/", "_", "\x00"]
ASCII_UPPER = str.maketrans(string.ascii_lowercase, string.ascii_uppercase)


def forgivable(char: str) -> bool:
    """A character the normalisation may drop: any Unicode whitespace, dash punctuation or a full stop."""
    return unicodedata.category(char) in ("Zs", "Zl", "Zp", "Pd") or char in "\t\n\v\f\r\x1c\x1d\x1e\x1f\x85."


@st.composite
def decorated(draw: st.DrawFn, code: str) -> str:
    """``code`` with every ASCII letter in either case and separators before, between and after characters."""
    gaps = st.lists(st.sampled_from(SEPARATORS), max_size=2).map("".join)
    out = draw(gaps)
    for char in code:
        out += (char.lower() if draw(st.booleans()) else char) + draw(gaps)
    return out


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """A decorated code with a character inserted or replaced (often a lookalike), or any text at all."""
    value = draw(CODES.flatmap(decorated))
    if draw(st.booleans()):
        return draw(st.text(st.characters(codec="utf-8"), max_size=20))
    position = draw(st.integers(0, len(value)))
    char = draw(st.one_of(st.sampled_from(LOOKALIKES), st.characters(codec="utf-8")))
    return value[:position] + char + value[position + draw(st.integers(0, 1)):]


@SPARK
@given(st.lists(CODES.flatmap(lambda code: st.tuples(st.just(code), decorated(code))), min_size=10, max_size=40),
       st.lists(st.one_of(st.none(), mutated()), min_size=20, max_size=80))
def test_isrc_normalisation(spark, decorated_codes, others):
    rows = [(value, code) for code, value in decorated_codes] + [(value, None) for value in others]
    frame = spark.createDataFrame(rows, "value string, code string")
    normalized = text.isrc_normalized(F.col("value"))
    got = frame.select("value", "code", normalized.alias("once"),
                       text.isrc_normalized(normalized).alias("twice")).collect()
    assert len(got) == len(rows)  # and no error on any text
    for row in got:
        if row.code is not None:  # case, hyphens, spaces and dots are forgiven
            assert row.once == row.code, (row.value, row.once)
        if row.once is None:
            continue
        assert ISRC.fullmatch(row.once), (row.value, row.once)
        assert row.twice == row.once, (row.value, row.once, row.twice)
        # Sound: only forgivable characters were dropped, only ASCII letters were upper-cased.
        kept = [c for c in row.value if not forgivable(c)]
        assert "".join(kept).translate(ASCII_UPPER) == row.once, (row.value, row.once)
    assert all(r.once is None for r in got if r.value is None)


# Accented Latin text: ASCII letters, each followed by up to three combining marks, in NFC (precomposed
# where Unicode has the letter) or NFD.
MARKS = [chr(c) for c in (0x300, 0x301, 0x302, 0x303, 0x304, 0x306, 0x307, 0x308, 0x30A, 0x30B, 0x30C, 0x323,
                          0x327, 0x328, 0x31B)]
PLAIN = st.text(st.sampled_from(string.ascii_letters + string.digits + " '-"), min_size=1, max_size=15)


@st.composite
def accented(draw: st.DrawFn) -> tuple[str, str]:
    plain = draw(PLAIN)
    marked = "".join(c + "".join(draw(st.lists(st.sampled_from(MARKS), max_size=3))) if c.isalpha() else c
                     for c in plain)
    return plain, unicodedata.normalize(draw(st.sampled_from(["NFC", "NFD"])), marked)


def without_marks(value: str) -> str:
    return "".join(c for c in value if not unicodedata.combining(c))


# Letters with no lower-case form whose compatibility decomposition is a capital (ℂ → C, ᴬ → A): lower-casing
# leaves them alone, folding them must not leave a capital behind. Taken from the Unicode database.
CASELESS_CAPITALS = [c for c in map(chr, range(0xA0, 0x10000)) if unicodedata.category(c).startswith("L")
                     and c.lower() == c and any(d.isupper() for d in unicodedata.normalize("NFKD", c))]
ANY_TEXT = st.text(st.one_of(st.sampled_from(CASELESS_CAPITALS), st.characters(codec="utf-8")), max_size=20)
LATIN = st.text(st.one_of(st.characters(min_codepoint=0xC0, max_codepoint=0x17F),
                          st.sampled_from(string.printable)), max_size=20)


@SPARK
@given(st.lists(st.one_of(st.none(), ANY_TEXT), min_size=20, max_size=60),
       st.lists(accented(), min_size=10, max_size=40), st.lists(LATIN, min_size=10, max_size=40))
def test_fold(spark, anything, accents, latin):
    rows = ([("any", v, None) for v in anything] + [("accented", v, plain) for plain, v in accents]
            + [("latin", v, None) for v in latin])
    frame = spark.createDataFrame(rows, "kind string, value string, plain string")
    folded = text.fold(F.col("value"))
    got = frame.select("kind", "value", "plain", folded.alias("once"), text.fold(folded).alias("twice")).collect()
    assert len(got) == len(rows)  # and no error on any text
    for row in got:
        assert row.twice == row.once, ("not idempotent", row.value, row.once, row.twice)
        if row.kind == "accented":  # marks the fold cannot attach to a letter stay for word_key to drop
            assert without_marks(row.once) == row.plain.lower(), (row.value, row.once)
        if row.kind == "latin":  # Latin-1 and Latin Extended-A letters all fold to ASCII letters
            letters = [c for c in row.once if unicodedata.category(c).startswith("L")]
            assert all(c in string.ascii_lowercase for c in letters), (row.value, row.once)
    assert all(r.once is None for r in got if r.value is None)

"""The cross-reference's text and ISRC normalisation (Spark expressions) against hand-written expectations and
an independent plain-Python reference (unicodedata + re)."""

from __future__ import annotations

import re
import unicodedata

import pytest
from pyspark.sql import functions as F

from jobs.xref import text

# Letters NFKD does not decompose, spelled as unidecode spells them (independent of text.SPECIAL_FOLDS).
REFERENCE_SPECIAL = {"ø": "o", "ł": "l", "đ": "d", "ß": "ss", "æ": "ae", "œ": "oe", "þ": "th", "ð": "d", "ı": "i"}


def reference_key(value: str) -> str:
    """ListenBrainz-style key in plain Python: lower-case, NFKD minus combining marks, special letters, then
    every non-word character removed (Python's \\W also drops leftover marks such as Thai tone signs)."""
    lowered = value.lower()
    decomposed = unicodedata.normalize("NFKD", lowered)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    for char, folded in REFERENCE_SPECIAL.items():
        stripped = stripped.replace(char, folded)
    return re.sub(r"[\W_]+", "", stripped)


REAL_NAMES = [
    "Beyoncé", "Sigur Rós", "Mötley Crüe", "Björk", "Motörhead", "Sørlie", "Straße", "Œuvre", "Ædelstenen",
    "Þórir", "Łódź", "Ελληνικά τραγούδια", "Ёлка", "ＡＢＣ Ｄｅｆ", "桜が降る夜は", "แปลไม่ออก", "7人祭",
    "m-flo♥BoA", "AC/DC", "Guns N' Roses", "P!nk", "Ke$ha", "Déjà Vu", "Café del Mar", "naïve", "Ångström",
    "e\u0301tude",  # decomposed é
]


def _rows(spark, values, *columns):
    frame = spark.createDataFrame([(v,) for v in values], "value string")
    return frame.select("value", *columns).collect()


def test_word_key_of_folded_text_agrees_with_a_python_reference(spark):
    rows = _rows(spark, REAL_NAMES, text.artist_key(text.fold(F.col("value"))).alias("key"))
    got = {r.value: r.key for r in rows}
    assert got == {name: reference_key(name) for name in REAL_NAMES}
    # A few spelled out by hand, so the reference itself is checked too.
    assert got["Beyoncé"] == "beyonce" and got["Sørlie"] == "sorlie" and got["Straße"] == "strasse"
    assert got["ＡＢＣ Ｄｅｆ"] == "abcdef" and got["桜が降る夜は"] == "桜か降る夜は" and got["e\u0301tude"] == "etude"


def test_artist_key_without_word_characters_keeps_the_text(spark):
    rows = _rows(spark, ["!!!", "  ", None, "The The"], text.artist_key(text.fold(F.col("value"))).alias("key"))
    assert {r.value: r.key for r in rows} == {"!!!": "!!!", "  ": None, None: None, "The The": "thethe"}


TITLE_CASES = [  # (title, title_key, title_plain), by hand
    ("Hey Jude - Remastered 2015", "heyjude", "heyjuderemastered2015"),
    ("Dream On - 2011 Remaster", "dreamon", "dreamon2011remaster"),
    ("Wonderwall (Remastered)", "wonderwall", "wonderwallremastered"),
    ("Paranoid (Remastered 2009)", "paranoid", "paranoidremastered2009"),
    ("Live Forever - Live", "liveforever", "liveforeverlive"),
    ("Creep - Live at Glastonbury 1997", "creep", "creepliveatglastonbury1997"),
    ("Creep - Live Version", "creep", "creepliveversion"),
    ("Song 2 - Radio Edit", "song2", "song2radioedit"),
    ("Let It Be - Single Version", "letitbe", "letitbesingleversion"),
    ("Yesterday - Mono", "yesterday", "yesterdaymono"),
    ("Low (feat. T-Pain)", "low", "lowfeattpain"),
    ("SOME DAY ONE DAY (feat. VERBAL (m-flo))", "somedayoneday", "somedayonedayfeatverbalmflo"),
    ("Sucker [ft. Someone & Other]", "sucker", "suckerftsomeoneother"),
    ("Crazy in Love feat. Jay-Z", "crazyinlove", "crazyinlovefeatjayz"),
    ("Hey Boy, Hey Girl", "heyboyheygirl", "heyboyheygirl"),
    ("the Love Bug (Big Bug NYC remix)", "thelovebugbigbugnycremix", "thelovebugbigbugnycremix"),
    ("Live", "live", "live"),
    ("Remastered", "remastered", "remastered"),
    ("Intro", "intro", "intro"),
    ("Left - Right", "leftright", "leftright"),
    ("!!!", "!!!", "!!!"),
    ("Café du Monde - 2003 Remastered Version", "cafedumonde", "cafedumonde2003remasteredversion"),
    ("Rock Me - Live - 2011 Remaster", "rockme", "rockmelive2011remaster"),
]


def test_title_keys_strip_feat_and_release_noise(spark):
    title_key, title_plain = text.title_keys(text.fold(F.col("value")))
    rows = _rows(spark, [t for t, _, _ in TITLE_CASES], title_key.alias("key"), title_plain.alias("plain"))
    assert {r.value: (r.key, r.plain) for r in rows} == {t: (k, p) for t, k, p in TITLE_CASES}


ISRC_CASES = [  # (as written, normalised, valid as written)
    ("GBAAA9900303", "GBAAA9900303", True),
    ("gbaaa9900303", "GBAAA9900303", False),
    ("GB-AAA-99-00303", "GBAAA9900303", False),
    ("gb-aaa-99-00303", "GBAAA9900303", False),
    (" GB AAA 99 00303 ", "GBAAA9900303", False),
    ("GB.AAA.99.00303", "GBAAA9900303", False),
    ("GB\u2010AAA\u201099\u201000303", "GBAAA9900303", False),
    ("US-S1Z-99-00001", "USS1Z9900001", False),
    ("GBAAA990030", None, False),  # 11 characters
    ("GBAAA99003033", None, False),  # 13 characters
    ("G1AAA9900303", None, False),  # digit in the country code
    ("GBAAA99A0303", None, False),  # letter in the designation
    ("N/A", None, False),
    ("", None, False),
    (None, None, False),
]


def test_isrc_normalisation_and_validity(spark):
    rows = _rows(spark, [w for w, _, _ in ISRC_CASES], text.isrc_normalized(F.col("value")).alias("normalized"),
                 text.isrc_valid(F.col("value")).alias("valid"))
    assert {r.value: (r.normalized, r.valid) for r in rows} == {w: (n, v) for w, n, v in ISRC_CASES}


def test_similarity_and_digits(spark):
    row = spark.createDataFrame([("kitten", "sitting", "symphonyno5op67")], "a string, b string, c string").select(
        text.similarity(F.col("a"), F.col("b")).alias("s"), text.similarity(F.col("a"), F.col("a")).alias("same"),
        text.similarity(F.lit(""), F.lit("")).alias("empty"), text.similarity(F.col("a"), F.lit(None)).alias("null"),
        text.digits(F.col("c")).alias("d"),
    ).first()
    assert row.s == pytest.approx(1 - 3 / 7) and row.same == 1.0 and row.empty == 1.0 and row.null is None
    assert row.d == "567"


def test_fold_table_is_one_to_one_and_expansions_are_multi_character():
    source, target, expansions = text.fold_table()
    assert len(source) == len(target) == len(set(source))
    assert all(len(v) > 1 for v in expansions.values()) and not set(expansions) & set(source)

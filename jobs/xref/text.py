r"""Text and ISRC normalisation for the cross-reference, as Spark column expressions (no Python UDFs).

Matching keys follow the ListenBrainz MBID mapping (musicbrainz-dump.md, "Peer practice"): lower-cased,
accent-folded, every non-word character removed, and "feat." parts and release noise (" - 2011 Remaster",
"(Remastered)", " - Live", " - Radio Edit", …) stripped.

Accent folding. Spark SQL has no ``unaccent``; the options were (measured in docs/benchmarks.md):

- ``translate`` with a one-to-one table plus a few ``replace`` calls for letters that expand (ß → ss,
  æ → ae, …), all running in the JVM under whole-stage codegen;
- a ``mapInArrow`` batch normaliser in Python (``unicodedata``/``unidecode``/``anyascii``), which pays for
  the Arrow round trip to a Python worker on every row of both sides.

The table is *generated* from Python's Unicode database (NFKD decomposition minus combining marks: é → e,
ά → α, が → か, Ａ → A), not typed in; the letters NFKD leaves alone (ø, ł, đ, ß, æ, œ, þ, …) are listed
explicitly, spelled as ``unidecode`` spells them. Scripts are not transliterated (CJK, Thai, Hangul stay as
written): both sides write them the same way, and a romanisation would merge homophones. Combining marks
that remain (Thai tone marks, Arabic vowel signs) go with the other non-word characters, as they do in
ListenBrainz's ``[^\w]``.
"""

from __future__ import annotations

import string
import unicodedata
from functools import cache

from pyspark.sql import Column
from pyspark.sql import functions as F

# Letters are folded when their compatibility decomposition (NFKD) is one base character plus combining
# marks (é → e, が → か, ά → α), and full-/half-width forms to their plain form (Ａ → A, ｶ → カ); letters
# that decompose into several characters are expanded only in the Latin blocks (ﬁ → fi, ǆ → dž → dz), not,
# say, Hangul syllables into their jamo.
WIDTH_FORMS = (0xFF01, 0xFFEE)
LATIN_EXPANSION_BLOCKS = ((0x00C0, 0x024F), (0x1E00, 0x1EFF), (0xFB00, 0xFB06))
# Letters without a decomposition, folded as unidecode folds them.
SPECIAL_FOLDS = {
    "ø": "o", "Ø": "O", "đ": "d", "Đ": "D", "ł": "l", "Ł": "L", "ħ": "h", "Ħ": "H", "ı": "i", "ŧ": "t",
    "Ŧ": "T", "ƀ": "b", "ð": "d", "Ð": "D", "ĸ": "k", "ß": "ss", "ẞ": "SS", "æ": "ae", "Æ": "AE", "œ": "oe",
    "Œ": "OE", "þ": "th", "Þ": "TH", "ĳ": "ij", "Ĳ": "IJ", "ŋ": "ng", "Ŋ": "NG", "ŉ": "'n",
}

# ISRC (ISO 3901): country (2 letters), registrant (3 alphanumerics), year (2 digits), designation (5 digits).
ISRC_PATTERN = r"^[A-Z]{2}[A-Z0-9]{3}[0-9]{7}$"
# What "normalised" drops (issue: hyphens, spaces and dots): ASCII and Unicode hyphens/dashes, any
# whitespace including no-break and em spaces (Java's plain \s is ASCII only), full stops.
ISRC_SEPARATORS = r"[\p{IsWhite_Space}\u2010-\u2015.\-]+"

# Non-word characters: everything but letters and digits. Combining marks left after folding (decomposed
# input, Thai tone marks, Arabic vowel signs, Devanagari matras) go too, as in ListenBrainz's ``[^\w]``.
NON_WORD = r"[^\p{L}\p{N}]+"
# "feat." credits: in brackets anywhere ("Song (feat. X)", "Song [ft. X & Y]"), or unbracketed up to the
# end ("Song feat. X", "Song - ft. X").
FEAT = (r"\s*[(\[]\s*(?:feat|ft|featuring)\b\.?[^)\]]*[)\]]"
        r"|\s+(?:[-–—]\s+)?(?:feat|ft|featuring)\b\.?\s.*$")
# Release noise words (lower-case, folded text): remasters, live, radio/single/album versions, mono/stereo.
NOISE_WORDS = (
    r"(?:(?:\d{4}\s+)?(?:digital(?:ly)?\s+)?remaster(?:ed)?(?:\s+\d{4})?(?:\s+(?:version|edition))?(?:\s+\d{4})?"
    r"|live(?:\s+version|\s+(?:at|from|in|on)\b.*)?"
    r"|radio\s+(?:edit|version|mix)"
    r"|single\s+(?:edit|version)"
    r"|album\s+version"
    r"|(?:\d{4}\s+)?(?:mono|stereo)(?:\s+(?:version|mix))?)"
)
# Noise is only removed as a suffix, " - <noise>" or "(<noise>)"/"[<noise>]" at the end, so a title that
# *is* "Live" or "Remastered" keeps its words.
NOISE_SUFFIX = rf"(?:\s+[-–—]\s+{NOISE_WORDS}|\s*[(\[]\s*{NOISE_WORDS}\s*[)\]])\s*$"
# Cheap substring tests that every text the regular expressions could change contains; most titles
# contain none, and skip the regular expressions (the costliest step of the keys).
STRIP_TRIGGERS = ("(", "[", " - ", " – ", " — ", "feat", "ft")


@cache
def fold_table() -> tuple[str, str, dict[str, str]]:
    """(translate source, translate target, expansions): one-character folds for ``translate`` and
    multi-character folds for ``replace``, generated from Python's Unicode database (basic plane)."""
    source, target, expansions = [], [], {}
    for code in range(0x00A0, 0x10000):
        char = chr(code)
        width_form = WIDTH_FORMS[0] <= code <= WIDTH_FORMS[1]
        if char in SPECIAL_FOLDS or not (unicodedata.category(char)[0] == "L" or width_form):
            continue
        decomposed = unicodedata.normalize("NFKD", char)
        folded = "".join(c for c in decomposed if not unicodedata.combining(c)).translate(_special_table())
        if not folded or folded == char:
            continue
        if len(folded) == 1:
            source.append(char)
            # Lower-cased: ``fold`` lower-cases first, but letters without a lower-case form (ℂ, ᴬ) fold to
            # capitals, and a second fold would change them again.
            target.append(folded.lower() if len(folded.lower()) == 1 else folded)
        elif any(first <= code <= last for first, last in LATIN_EXPANSION_BLOCKS):
            expansions[char] = folded
    for char, folded in SPECIAL_FOLDS.items():
        if len(folded) == 1:
            source.append(char)
            target.append(folded)
        else:
            expansions[char] = folded
    return "".join(source), "".join(target), expansions


@cache
def _special_table() -> dict[int, str]:
    return str.maketrans(SPECIAL_FOLDS)


def fold(column: Column) -> Column:
    """Lower-case and accent-fold (Beyoncé → beyonce, Sørlie → sorlie, Straße → strasse); other scripts
    are left as written."""
    source, target, expansions = fold_table()
    lowered = F.lower(column)
    value = F.translate(lowered, source, target)
    for char, folded in expansions.items():
        if char == char.lower():  # the text is lower-case already
            value = F.replace(value, F.lit(char), F.lit(folded.lower()))
    # Most titles are plain ASCII (as many bytes as characters): nothing to fold, skip the table look-ups.
    return F.when(F.octet_length(lowered) == F.length(lowered), lowered).otherwise(value)


def word_key(column: Column) -> Column:
    """Folded text with every non-word character removed; NULL when nothing is left."""
    key = F.regexp_replace(column, NON_WORD, "")
    return F.when(F.length(key) > 0, key)


def strip_title_noise(folded: Column) -> Column:
    """Drop "feat." parts and release-noise suffixes from folded (lower-case) title text."""
    value = F.regexp_replace(folded, FEAT, "")
    for _ in range(2):  # " - Live - 2011 Remaster": two suffixes
        value = F.regexp_replace(value, NOISE_SUFFIX, "")
    triggered = F.lit(False)
    for trigger in STRIP_TRIGGERS:
        triggered = triggered | folded.contains(trigger)
    return F.when(triggered, value).otherwise(folded)


def title_keys(folded: Column) -> tuple[Column, Column]:
    """(title_key, title_plain) of a *folded* title (``fold``; fold once and derive both keys from that
    column, so the plan computes the fold once). ``title_key`` is the blocking key: feat./noise stripped,
    non-word characters removed; it falls back to the plain key when stripping leaves nothing, and to the
    trimmed title when the title has no word character at all ("!!!"). ``title_plain`` is the key without
    stripping, to tell a match as written from one that needed cleaning."""
    plain = word_key(folded)
    stripped = word_key(strip_title_noise(folded))
    punctuation_only = F.when(F.length(F.trim(folded)) > 0, F.trim(folded))
    return F.coalesce(stripped, plain, punctuation_only), F.coalesce(plain, punctuation_only)


def artist_key(folded: Column) -> Column:
    """A *folded* artist name without non-word characters (the trimmed name when nothing is left)."""
    return F.coalesce(word_key(folded), F.when(F.length(F.trim(folded)) > 0, F.trim(folded)))


def digits(key: Column) -> Column:
    """The ASCII digits of a key in order ("symphonyno5op67" → "567"): titles that differ in a number are
    different works, so fuzzy title matching only compares titles with equal digits."""
    return F.regexp_replace(key, "[^0-9]", "")


def isrc_normalized(isrc: Column) -> Column:
    """ASCII letters upper-cased, separators dropped; NULL unless the result is a valid ISRC. Only ASCII is
    upper-cased: ``upper`` would turn ß, ﬀ, ı or ſ into ASCII letters and accept codes no one wrote."""
    upper = F.translate(isrc, string.ascii_lowercase, string.ascii_uppercase)
    cleaned = F.regexp_replace(upper, ISRC_SEPARATORS, "")
    return F.when(cleaned.rlike(ISRC_PATTERN), cleaned)


def isrc_valid(isrc: Column) -> Column:
    """True when the string is a valid ISRC exactly as written."""
    return F.coalesce(isrc.rlike(ISRC_PATTERN), F.lit(False))


def similarity(left: Column, right: Column) -> Column:
    """1 − Levenshtein distance / length of the longer string (1.0 for equal strings, NULL if either is)."""
    longest = F.greatest(F.length(left), F.length(right))
    return F.when(longest == 0, F.lit(1.0)).otherwise(1.0 - F.levenshtein(left, right) / longest)

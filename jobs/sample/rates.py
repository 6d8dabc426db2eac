"""Every rate and shape of the sample dump, in one place (documented in ``generator.py``).

Rates are probabilities per row unless said otherwise; the manifest records the exact realised counts,
so tests assert on the manifest, never on these targets.
"""

from __future__ import annotations

from dataclasses import dataclass

GENERATOR_VERSION = "1.0.0"

# --- Chunking (fixed: output must not depend on scheduling) ------------------------------------------
TRACK_CHUNK = 200_000
ARTIST_CHUNK = 250_000
PLAYLIST_CHUNK = 2_000  # playlists per chunk (~140K playlist rows)
ALBUM_DRAW_CHUNK = 65_536

# --- Sizes, relative to T = spec.tracks (valid tracks) ---------------------------------------------------
ARTISTS_PER_TRACK = 1 / 8
PLAYLISTS_PER_TRACK = 1 / 10
GHOST_POOL_PER_TRACK = 1 / 50  # ids only present as playlist_tracks.id_if_not_in_tracks_table
EPISODE_POOL_PER_TRACK = 1 / 100

# --- Albums: ≈ T/4.2 albums ---------------------------------------------------------------------------
ALBUM, SINGLE, COMPILATION = 0, 1, 2
ALBUM_TYPE_NAMES = ("album", "single", "compilation")
ALBUM_TYPE_PROBS = (0.24, 0.72, 0.04)
ALBUM_TRACKS = (8, 16)  # inclusive range, album_type = album
COMPILATION_TRACKS = (10, 20)
TWO_DISC_MIN_TRACKS = 16  # compilations this long are split over two discs
ALBUM_WEIGHT_POP_SCALE = 25.0  # extra albums go to artist a with weight 1 + (pop_a / 25)**2
RELEASE_DATE_PRECISION_PROBS = (0.80, 0.05, 0.15)  # day, month, year
NEWEST_YEAR = 2025
OLDEST_YEAR = 1950

# --- Popularity: artist popularity = 100 * (1 - q)**ARTIST_POP_EXPONENT for popularity percentile q;
# a track keeps 55–100 % of it plus noise → ~85 % of tracks below 20, a head reaching 90–100.
ARTIST_POP_EXPONENT = 24.0
TRACK_POP_FACTOR = (0.55, 1.0)
TRACK_POP_NOISE = 4.0
FOLLOWERS_PER_POP = 0.11  # log10(followers) ≈ 1 + 0.11 * popularity + N(0, 0.6)

# --- Tracks --------------------------------------------------------------------------------------------
MULTI_ARTIST_RATE = 0.15  # tracks with 2–3 artists
THREE_ARTIST_SHARE = 0.25  # of those, with 3
FEAT_IN_TITLE_SHARE = 0.40  # multi-artist tracks whose title says " (feat. X)"
RELEASE_NOISE_RATE = 0.07  # titles with " - 2011 Remaster", " (Remastered 2009)", " - Live", " - Radio Edit"
PREVIEW_URL_RATE = 0.70
EAN_RATE = 0.01
TITLE_STEP = 1531  # per-artist title stride through the vocabulary (coprime with its size)

ISRC_NULL_RATE = 0.02
ISRC_INVALID_RATE = 0.005
ISRC_COUNTRIES = (
    "US", "GB", "DE", "FR", "SE", "NL", "JP", "KR", "BR", "MX", "ES", "IT", "CA", "AU", "NO", "DK", "FI", "BE",
    "AT", "CH", "PL", "IE", "NZ", "AR", "CO", "CL", "IN", "ZA", "PT", "QM", "QZ", "TC", "HK", "TW", "SG", "ID",
    "TH", "PH", "TR", "GR", "HU", "CZ", "RO", "IS", "IL", "NG", "KE", "CN", "RU", "UA",
)
# MusicBrainz-only ISRCs (fillers, second ISRCs) use other countries: they can never equal a Spotify ISRC.
FILLER_ISRC_COUNTRIES = ("BG", "HR", "LT", "LV", "EE", "VN", "MY", "PE", "VE", "EC")

# --- Cross-reference plants (per valid track, exclusive; the rest has no MusicBrainz recording) --------
# isrc_exact: MB recording carries the same canonical ISRC.
# isrc_fuzzy: Spotify writes it lower-case / hyphenated / spaced; MB has it canonical.
# isrc_shared: two MB recordings share the ISRC; the one with the closer length is expected (isrc_exact).
# metadata_match: MB recording without that ISRC; same primary artist + title (case, accents or release
#   noise differ), length within ±METADATA_LENGTH_TOLERANCE_MS.
# decoy_other_artist: same title by a MusicBrainz-only artist (expected: no_match).
# decoy_duration: same title and artist, length off by DECOY_LENGTH_OFF_MS (expected: no_match).
PLANT_RATES = (
    ("isrc_exact", 0.20),
    ("isrc_fuzzy", 0.04),
    ("isrc_shared", 0.01),
    ("metadata_match", 0.08),
    ("decoy_other_artist", 0.02),
    ("decoy_duration", 0.01),
)
PLANT_NAMES = ("none", *(name for name, _ in PLANT_RATES))
PLANT_METHOD = {
    "none": "no_match",
    "isrc_exact": "isrc_exact",
    "isrc_fuzzy": "isrc_fuzzy",
    "isrc_shared": "isrc_exact",
    "metadata_match": "metadata_match",
    "decoy_other_artist": "no_match",
    "decoy_duration": "no_match",
}
METADATA_LENGTH_TOLERANCE_MS = 2_500  # the xref job allows ±3 s
ISRC_LENGTH_JITTER_MS = 2_000
SHARED_FAR_LENGTH_MS = (8_000, 40_000)  # the other recording of a shared ISRC
DECOY_LENGTH_OFF_MS = (35_000, 120_000)
MB_FILLER_RATE = 0.10  # unrelated MB recordings, per valid track
MB_FILLERS_PER_ARTIST = 3
MB_ESCAPE_NAME_RATE = 0.01  # fillers whose names hold a tab, backslash, newline or CR (at least 3)
MB_LENGTH_NULL_RATE = 0.05  # isrc_exact recordings with recording.length NULL
MB_SECOND_ISRC_RATE = 0.05  # ISRC-planted recordings that carry a second, unrelated ISRC
MB_METADATA_WITH_OTHER_ISRC_RATE = 0.30  # metadata_match recordings that carry an unrelated ISRC
MB_ARTIST_FOLD_RATE = 0.30  # MB artists whose name is accent-folded (visible on accented names only)
MB_MULTI_CREDIT_RATE = 0.50  # recordings of multi-artist tracks credited to all artists
METADATA_VARIATIONS = ("exact", "case", "accents", "noise")  # equally likely

# --- Audio features ---------------------------------------------------------------------------------------
AF_NULL_RESPONSE_RATE = 0.04
AF_KEY_MINUS_ONE_RATE = 0.02
TEMPO_ZERO_RATE = 0.002
TEMPO_HIGH_RATE = 0.003  # tempo in 220–250
TEMPO_HALF_DOUBLE_RATE = 0.05
TIME_SIGNATURES = ((4, 0.88), (3, 0.08), (5, 0.02), (1, 0.015), (0, 0.005))

# --- Malformed rows (ingest's quarantine): max(MIN, round(T * RATE)) rows per reason -------------------
MALFORMED_RATE = 1e-4
MALFORMED_MIN = 3  # once T >= MALFORMED_MIN_TRACKS; 1 below
MALFORMED_MIN_TRACKS = 1_000
TRACK_MALFORMED_REASONS = ("null_id", "non_base62_id", "wrong_length_id", "popularity_too_high",
                           "popularity_negative")
AF_MALFORMED_REASONS = ("non_numeric_feature", "bad_track_id")
ARTIST_MALFORMED_REASONS = ("bad_id",)

# --- Playlists ----------------------------------------------------------------------------------------
PLAYLIST_MIXED_RATE = 0.10
PLAYLIST_SHORT_RATE = 0.05  # 1–4 tracks
PLAYLIST_LONG_RATE = 0.025  # 501–800 tracks
PLAYLIST_LONG_MAX = 800
PLAYLIST_LENGTH_MEDIAN = 40  # log-normal bulk, clipped to 5–500
PLAYLIST_LENGTH_SIGMA = 0.9
PLAYLIST_IN_GENRE_RATE = 0.85
ZIPF_EXPONENT = 0.9  # pick probability ∝ popularity_rank ** -s (ghosts and episodes too)
DEDUP_ROUNDS = 6  # re-draws of accidental repeats before falling back to uniform picks
DUPLICATE_PLANT_RATE = 0.002  # track rows repeating the previous track of the playlist
ROW_EPISODE_RATE = 0.01
ROW_LOCAL_RATE = 0.005
ROW_GHOST_RATE = 0.02
ROW_UNRESOLVABLE_RATE = 0.0002  # half "track_rowid NULL and no id", half dangling track_rowid
MIN_SPECIAL_ROWS = 3  # guaranteed rows of each special kind when the dump has enough rows
ADDED_AT_ZERO_RATE = 0.03
COLLABORATIVE_RATE = 0.02
SPOTIFY_OWNED_RATE = 0.08
DESCRIPTION_RATE = 0.35

FETCHED_AT_MS = 1_751_328_000_000  # 2025-07-01T00:00:00Z; rows spread over the next 30 days
FETCH_WINDOW_MS = 30 * 86_400_000


@dataclass(frozen=True)
class Genre:
    """A macro genre: its share of artists, Spotify genre strings and mean audio features."""

    name: str
    weight: float
    tags: tuple[str, ...]
    danceability: float
    energy: float
    valence: float
    acousticness: float
    instrumentalness: float
    speechiness: float
    liveness: float
    loudness: float
    tempo: float
    major: float  # P(mode = 1)
    duration_s: float  # median track length
    explicit: float
    age_years: float  # mean age of releases


# Means agree with the spec's GENRE_PROFILES (edm, acoustic-folk, hip-hop, classical, metal, jazz).
GENRES: tuple[Genre, ...] = (
    Genre("pop", 0.20, ("pop", "dance pop", "k-pop", "electropop", "indie pop", "post-teen pop", "art pop", "j-pop",
                        "synthpop"), .68, .68, .55, .15, .02, .07, .15, -6.0, 118, .60, 200, .12, 6),
    Genre("rock", 0.15, ("rock", "alternative rock", "indie rock", "classic rock", "modern rock", "garage rock",
                         "post-punk", "album rock", "permanent wave"), .50, .75, .50, .10, .08, .05, .20, -6.5, 125,
          .70, 230, .08, 15),
    Genre("hip-hop", 0.15, ("hip hop", "rap", "trap", "uk hip hop", "southern hip hop", "conscious hip hop", "drill",
                            "melodic rap", "underground hip hop"), .70, .65, .48, .12, .01, .15, .18, -6.5, 110, .50,
          190, .45, 5),
    Genre("edm", 0.10, ("edm", "house", "deep house", "techno", "tech house", "progressive house", "dubstep",
                        "trance", "drum and bass", "electro house"), .75, .85, .45, .05, .35, .06, .15, -5.0, 128,
          .50, 210, .08, 5),
    Genre("latin", 0.09, ("latin", "reggaeton", "latin pop", "urbano latino", "bachata", "salsa", "cumbia",
                          "trap latino", "regional mexican", "sertanejo", "forró"), .75, .72, .68, .20, .01, .09,
          .17, -5.5, 112, .55, 200, .20, 5),
    Genre("r&b", 0.07, ("r&b", "contemporary r&b", "neo soul", "soul", "alternative r&b", "urban contemporary",
                        "quiet storm", "funk"), .66, .55, .47, .25, .02, .10, .14, -7.5, 105, .50, 215, .20, 10),
    Genre("acoustic-folk", 0.08, ("folk", "indie folk", "singer-songwriter", "acoustic pop", "stomp and holler",
                                  "americana", "folk-pop", "chamber folk"), .50, .35, .45, .85, .30, .04, .14, -11.0,
          112, .75, 220, .01, 10),
    Genre("metal", 0.06, ("metal", "heavy metal", "death metal", "metalcore", "thrash metal", "black metal",
                          "power metal", "alternative metal", "nu metal"), .42, .95, .35, .02, .15, .08, .20, -5.0,
          135, .45, 260, .15, 12),
    Genre("jazz", 0.05, ("jazz", "bebop", "cool jazz", "contemporary jazz", "hard bop", "jazz fusion",
                         "smooth jazz", "vocal jazz", "jazz piano"), .55, .40, .50, .60, .50, .05, .25, -12.0, 115,
          .55, 300, .01, 25),
    Genre("classical", 0.05, ("classical", "early music", "baroque", "orchestral", "classical piano", "opera",
                              "neo-classical", "contemporary classical", "medieval"), .28, .15, .25, .80, .90, .02,
          .12, -20.0, 105, .65, 330, .00, 25),
)
ARTIST_GENRE_COUNT_PROBS = (0.18, 0.25, 0.25, 0.19, 0.13)  # 0..4 genre strings per artist
FEATURE_CONCENTRATION = {  # Beta(m·k, (1−m)·k): lower k = wider spread
    "danceability": 10.0, "energy": 8.0, "valence": 6.0, "acousticness": 3.0, "instrumentalness": 1.2,
    "speechiness": 12.0, "liveness": 8.0,
}

"""The mbdump reader on real fixture rows and on hand-written COPY text with every escape."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest

from lib.errors import InputError
from lib.sources import mbdump

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "musicbrainz" / "mbdump"


def pg_unescape(field: str) -> str | None:
    """Reference decoder for PostgreSQL COPY text fields, written independently (char by char)."""
    if field == "\\N":
        return None
    out, i = [], 0
    table = {"t": "\t", "n": "\n", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "\\": "\\"}
    while i < len(field):
        if field[i] == "\\" and i + 1 < len(field):
            out.append(table.get(field[i + 1], field[i + 1]))
            i += 2
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _dump(folder: Path, legacy: bool = False, sanitised: bool = False, sequence: str | None = "31") -> Path:
    folder.mkdir(parents=True)
    for table in mbdump.TABLES:
        shutil.copy(FIXTURE / table, folder / (f"{table}_sanitised" if sanitised else table))
    if legacy:
        lines = (FIXTURE / "isrc").read_text().splitlines()
        legacy_lines = []
        for line in lines:
            fields = line.split("\t")
            legacy_lines.append("\t".join([*fields[:3], "0", *fields[3:]]))
        (folder / "isrc").write_text("\n".join(legacy_lines) + "\n")
    if sequence is not None:
        (folder / "SCHEMA_SEQUENCE").write_text(sequence + "\n")
    return folder


@pytest.mark.parametrize(("legacy", "sequence", "layout"), [
    (False, "31", "31"), (True, "30", "legacy"), (True, None, "legacy"), (False, None, "31"),
])
def test_isrc_layout_detection(spark, tmp_path, legacy, sequence, layout):
    dump = mbdump.locate(_dump(tmp_path / "mb", legacy=legacy, sequence=sequence), tmp_path / "work")
    assert dump.isrc_layout == layout
    frame = mbdump.read_table(spark, dump, "isrc", [("isrc", "string"), ("recording", "long")])
    rows = {(r.isrc, r.recording) for r in frame.collect()}
    assert ("GBAAA9900303", 1062699) in rows and len(rows) == 17
    assert frame.where("_reject IS NOT NULL").count() == 0


def test_sanitised_names_and_tarball(spark, tmp_path):
    source = _dump(tmp_path / "src" / "mbdump", sanitised=True)
    archive_dir = tmp_path / "mb"
    archive_dir.mkdir()
    with tarfile.open(archive_dir / "mbdump.tar.bz2", "w:bz2") as tar:
        tar.add(source, arcname="mbdump")
    dump = mbdump.locate(archive_dir, tmp_path / "work")
    assert dump.table_file("recording").name == "recording_sanitised"
    assert mbdump.read_table(spark, dump, "recording", [("gid", "string")]).count() == 126
    marker = tmp_path / "work" / "mbdump.unpacked.json"
    stamp = marker.stat().st_mtime_ns
    mbdump.locate(archive_dir, tmp_path / "work")  # unpacked once, then reused
    assert marker.stat().st_mtime_ns == stamp


def test_escapes_nulls_and_malformed_lines(spark, tmp_path):
    folder = _dump(tmp_path / "mb" / "mbdump")
    fields = [
        "Tab\\there", "Back\\\\slash", "New\\nline", "Lit\\\\N not null", "\\\\t stays backslash-t",
        "Carriage\\rreturn", "Plain ünïcödé 7人祭",
    ]
    lines = [f"{900 + i}\t00000000-0000-0000-0000-00000000000{i}\t{name}\t1\t\\N\t\t0\t\\N\tf"
             for i, name in enumerate(fields)]
    lines.append("999\tbroken line with too few fields")
    lines.append("998\t00000000-0000-0000-0000-000000000998\tBad length\t1\tlong\t\t0\t\\N\tf")
    (folder / "recording").write_text("\n".join(lines) + "\n")
    dump = mbdump.locate(folder.parent, tmp_path / "work")
    frame = mbdump.read_table(spark, dump, "recording",
                              [("id", "long"), ("name", "string"), ("length", "long"), ("video", "boolean")])
    rows = {r.id: r for r in frame.collect()}
    for i, raw in enumerate(fields):
        assert rows[900 + i].name == pg_unescape(raw)
        assert rows[900 + i].length is None and rows[900 + i].video is False and rows[900 + i]._reject is None
    assert rows[999]._reject == "expected 9 tab-separated fields, got 2"
    assert rows[998]._reject == "length is not long"


def test_missing_dump_and_missing_table(tmp_path):
    with pytest.raises(InputError, match="no mbdump/ folder and no mbdump.tar.bz2"):
        mbdump.locate(tmp_path, tmp_path / "work")
    folder = _dump(tmp_path / "mb" / "mbdump")
    (folder / "artist").unlink()
    with pytest.raises(InputError, match="MusicBrainz table file 'artist' is missing"):
        mbdump.locate(folder.parent, tmp_path / "work")

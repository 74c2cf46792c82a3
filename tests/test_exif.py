"""Photo metadata (EXIF): read right from what cameras write, never an error for what they get wrong, read
once when a photo is first hashed (by the hasher or the classifier) and kept in the workspace."""

import io

import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from crackdesk.core.exchange import ensure_hashes, ensure_meta, export_csv
from crackdesk.core.csvfiles import read_csv
from crackdesk.core.exif import PhotoMeta, hash_and_meta, read_meta
from crackdesk.core.hashing import file_hash
from crackdesk.core.scan import scan_folder
from crackdesk.core.store import open_workspace
from factories import camera_exif, site_photo


def meta_of(image: Image.Image, fmt: str, exif) -> PhotoMeta:
    buffer = io.BytesIO()
    image.save(buffer, fmt, exif=exif)
    buffer.seek(0)
    with Image.open(buffer) as opened:
        return read_meta(opened)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
@pytest.mark.parametrize("lat, lon", [(48.8583701, 2.2944813), (-33.8567844, -151.2152967),
                                      (-0.000012, 179.999999), (89.5, -0.5)])
def test_gps_time_and_camera_are_read_with_their_signs(fmt, lat, lon):
    exif = camera_exif(lat, lon, "2024:05:03 09:59:58", "Canon", "Canon EOS R5", alt=-12.5, orientation=6,
                       offset="+02:00")
    meta = meta_of(Image.new("RGB", (40, 30), "grey"), fmt, exif)
    assert meta.lat == pytest.approx(lat, abs=1e-6) and meta.lon == pytest.approx(lon, abs=1e-6)
    assert meta.alt == pytest.approx(-12.5)
    assert meta.captured == "2024-05-03T09:59:58+02:00"  # DateTimeOriginal, not the later DateTime
    assert (meta.make, meta.model, meta.camera) == ("Canon", "Canon EOS R5", "Canon EOS R5")
    assert (meta.width, meta.height, meta.orientation) == (40, 30, 6)


def test_datetime_is_used_when_the_original_time_is_missing():
    exif = Image.Exif()
    exif[0x0132] = "2023:12:31 23:59:59"
    meta = meta_of(Image.new("RGB", (8, 8)), "JPEG", exif)
    assert meta.captured == "2023-12-31T23:59:59" and not meta.has_gps


def test_a_photo_without_exif_has_only_its_size():
    assert meta_of(Image.new("RGB", (20, 10)), "PNG", Image.Exif()) == PhotoMeta(width=20, height=10)


def malformed_exif():
    exif = Image.Exif()
    exif[0x010F] = "\x00\x01\x02"  # binary junk for a make
    exif[0x0110] = "x" * 500  # a "model" too long to be one
    exif[0x0112] = 99  # no such orientation
    exif[0x0132] = "0000:00:00 00:00:00"  # cameras without a clock
    exif.get_ifd(0x8769)[0x9003] = "2024:13:45 99:00:00"  # no such date
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (IFDRational(1, 0), IFDRational(0), IFDRational(0))  # a zero denominator
    gps[3], gps[4] = "E", (12.0, 70.0, 0.0)  # 70 minutes
    gps[5], gps[6] = b"\x00", IFDRational(5, 0)
    return exif


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_malformed_values_become_none_never_an_error(fmt):
    meta = meta_of(Image.new("RGB", (9, 7)), fmt, malformed_exif())
    assert meta == PhotoMeta(width=9, height=7)


def test_a_position_without_its_reference_or_past_the_pole_is_no_position():
    exif = camera_exif(10.0, 20.0)
    del exif.get_ifd(0x8825)[1]  # no N/S: the sign is unknown
    assert not meta_of(Image.new("RGB", (8, 8)), "JPEG", exif).has_gps
    exif = camera_exif(10.0, 20.0)
    exif.get_ifd(0x8825)[2] = (91.0, 0.0, 0.0)
    assert not meta_of(Image.new("RGB", (8, 8)), "JPEG", exif).has_gps


def test_a_broken_exif_block_or_a_non_image_still_gets_its_hash(tmp_path):
    good = site_photo(tmp_path / "a.jpg", False, camera_exif(1.0, 2.0))
    data = bytearray(good.read_bytes())
    start = data.index(b"Exif\x00\x00")
    data[start + 6:start + 40] = b"\xff" * 34  # the TIFF header inside APP1 destroyed
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(bytes(data))
    digest, meta = hash_and_meta(broken)
    assert digest == file_hash(broken) and not meta.has_gps
    (tmp_path / "notes.jpg").write_text("not a photo")
    assert hash_and_meta(tmp_path / "notes.jpg") == (file_hash(tmp_path / "notes.jpg"), PhotoMeta())


def test_the_hasher_stores_metadata_once_and_the_csv_shows_it(tmp_path):
    folder = tmp_path / "site"
    site_photo(folder / "pier1" / "a.jpg", True, camera_exif(-33.5, -70.25, "2024:05:03 10:00:00"))
    site_photo(folder / "pier1" / "b.png", False)
    with open_workspace(folder) as ws:
        ws.sync(scan_folder(folder))
        ids = {r.path: r.id for r in ws.rows()}
        assert ws.photo_meta(ids["pier1/a.jpg"]) is None  # not hashed yet
        ensure_hashes(ws)
        a = ws.photo_meta(ids["pier1/a.jpg"])
        assert (a.lat, a.lon, a.captured) == (pytest.approx(-33.5), pytest.approx(-70.25), "2024-05-03T10:00:00")
        assert ws.photo_meta(ids["pier1/b.png"]) == PhotoMeta(width=96, height=64)  # read: nothing there
        assert ws.hashed_without_meta() == []
        export_csv(ws, tmp_path / "out.csv")
    rows = {r["path"]: r for r in read_csv(tmp_path / "out.csv")}
    assert (rows["pier1/a.jpg"]["captured"], rows["pier1/a.jpg"]["lat"], rows["pier1/a.jpg"]["lon"]) == \
        ("2024-05-03T10:00:00", "-33.5000000", "-70.2500000")
    assert (rows["pier1/b.png"]["captured"], rows["pier1/b.png"]["lat"]) == ("", "")


def test_a_workspace_from_before_metadata_catches_up(tmp_path):
    """A V3 workspace (hashes, no photo_meta) is migrated on open; ensure_meta reads what is missing."""
    import sqlite3

    from crackdesk.core.schema import MIGRATIONS

    folder = tmp_path / "old"
    photo = site_photo(folder / "a.jpg", True, camera_exif(51.5, -0.125, "2022:01:02 03:04:05"))
    db_path = folder / ".crackdesk" / "workspace.sqlite"
    db_path.parent.mkdir()
    with sqlite3.connect(db_path) as db:
        for script in MIGRATIONS[:3]:
            db.executescript(script)
        db.execute("INSERT INTO meta VALUES ('schema_version', '3')")
        db.execute("INSERT INTO images(path, hash, size, mtime_ns, added) VALUES ('a.jpg', ?, ?, ?, 'then')",
                   (file_hash(photo), photo.stat().st_size, photo.stat().st_mtime_ns))
    with open_workspace(folder) as ws:
        ws.sync(scan_folder(folder))
        assert ws.hashed_without_meta() == [("a.jpg", file_hash(photo))]
        assert ensure_meta(ws) == 1
        meta = ws.photo_meta(ws.image_id("a.jpg"))
        assert (meta.lat, meta.lon, meta.captured) == (pytest.approx(51.5), pytest.approx(-0.125),
                                                       "2022-01-02T03:04:05")
        assert ensure_meta(ws) == 0  # read once


def test_classification_reads_metadata_from_the_header_it_opens(tmp_path, tiny_model):
    """The classifier hashes photos nobody hashed before: their metadata is stored in the same flush."""
    from crackdesk.core.classify import classify_into_workspace
    from crackdesk.core.inference import Classifier

    folder = tmp_path / "site"
    site_photo(folder / "a.jpg", True, camera_exif(12.25, -45.5, "2021:07:08 09:10:11", "DJI", "FC3411"))
    site_photo(folder / "b.jpg", False)
    with open_workspace(folder) as ws:
        ws.sync(scan_folder(folder))
        items = [(r.id, r.path) for r in ws.rows()]
        assert ws.unhashed() == items
        classify_into_workspace(ws, Classifier(tiny_model), items)
        assert ws.hashed_without_meta() == []  # nothing left for anyone to read again
        a = ws.photo_meta(ws.image_id("a.jpg"))
        assert (a.lat, a.lon, a.captured, a.camera) == (pytest.approx(12.25), pytest.approx(-45.5),
                                                        "2021-07-08T09:10:11", "DJI FC3411")


def test_sixty_seconds_of_arc_rounded_up_by_a_camera_still_count():
    exif = camera_exif(10.0, 20.0)
    exif.get_ifd(0x8825)[2] = (IFDRational(10), IFDRational(29), IFDRational(60))
    assert meta_of(Image.new("RGB", (8, 8)), "JPEG", exif).lat == pytest.approx(10.5)


def test_photo_meta_rows_follow_the_columns():
    from crackdesk.core.exif import COLUMNS, PhotoMeta

    values = tuple(range(len(COLUMNS)))
    meta = PhotoMeta(*values)
    assert meta.row() == values and PhotoMeta.from_row(meta.row()) == meta

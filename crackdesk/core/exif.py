"""What a photo says about itself (EXIF): capture time, GPS position, camera, stored size and orientation.

Read once per content, when the photo is first hashed (the hasher and the classifier already hold its
bytes), and kept in the workspace (`photo_meta`), so reports and the viewer never reopen files for it.
Missing or malformed EXIF is normal (screenshots, edited or scanned photos, odd cameras): every field
that cannot be read is None, and nothing here raises for a bad value.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path

from PIL import Image

from .errors import CrackDeskError
from .hashing import bytes_hash, read_file
from .images import open_image

# EXIF tag numbers (EXIF 2.32 / TIFF 6): IFD0, the Exif sub-IFD and the GPS sub-IFD.
MAKE, MODEL, ORIENTATION, DATETIME = 0x010F, 0x0110, 0x0112, 0x0132
EXIF_IFD, GPS_IFD = 0x8769, 0x8825
DATETIME_ORIGINAL, OFFSET_TIME_ORIGINAL = 0x9003, 0x9011
GPS_LAT_REF, GPS_LAT, GPS_LON_REF, GPS_LON, GPS_ALT_REF, GPS_ALT = 1, 2, 3, 4, 5, 6

MAX_TEXT = 64  # a camera name longer than this is garbage, not a name
_OFFSET = re.compile(r"^[+-]\d\d:\d\d$")


@dataclass(frozen=True)
class PhotoMeta:
    captured: str | None = None  # ISO 8601 as the camera wrote it (local time), with its UTC offset if known
    lat: float | None = None  # WGS84 degrees, south negative
    lon: float | None = None  # WGS84 degrees, west negative
    alt: float | None = None  # metres above sea level, below negative
    make: str | None = None
    model: str | None = None
    width: int | None = None  # as stored in the file, before orientation
    height: int | None = None
    orientation: int | None = None  # EXIF 1..8 (6 and 8: the camera was held upright)

    @classmethod
    def from_row(cls, row) -> "PhotoMeta":
        return cls(*row)

    def row(self) -> tuple:
        # Field by field: dataclasses.astuple deep-copies every value (0.06 ms a photo, on the thread storing results)
        return (self.captured, self.lat, self.lon, self.alt, self.make, self.model, self.width, self.height,
                self.orientation)

    @property
    def has_gps(self) -> bool:
        return self.lat is not None and self.lon is not None

    @property
    def camera(self) -> str | None:
        """'Make Model', without the make repeated when the model already starts with it."""
        if self.model and self.make and self.model.lower().startswith(self.make.lower()):
            return self.model
        return " ".join(p for p in (self.make, self.model) if p) or None


COLUMNS = tuple(f.name for f in fields(PhotoMeta))  # the photo_meta table's columns after `hash`


def read_meta(image: Image.Image) -> PhotoMeta:
    """The metadata of an image Pillow has opened (header only: nothing is decoded). Never raises: the
    classifier reads it from the header it opened, and a metadata oddity must not cost a photo its verdict."""
    width, height = image.size
    try:
        return _read_exif(image, width, height)
    except Exception:  # an EXIF value of a type nobody foresaw
        return PhotoMeta(width=width, height=height)


def _read_exif(image: Image.Image, width: int, height: int) -> PhotoMeta:
    exif = _exif_of(image)
    if exif is None:
        return PhotoMeta(width=width, height=height)
    sub = _ifd(exif, EXIF_IFD)
    gps = _ifd(exif, GPS_IFD)
    lat = _coordinate(gps.get(GPS_LAT), gps.get(GPS_LAT_REF), "NS", 90.0)
    lon = _coordinate(gps.get(GPS_LON), gps.get(GPS_LON_REF), "EW", 180.0)
    if lat is None or lon is None:
        lat = lon = None  # half a position is no position
    orientation = exif.get(ORIENTATION)
    return PhotoMeta(
        captured=(_timestamp(sub.get(DATETIME_ORIGINAL), sub.get(OFFSET_TIME_ORIGINAL))
                  or _timestamp(exif.get(DATETIME))),
        lat=lat, lon=lon, alt=_altitude(gps.get(GPS_ALT), gps.get(GPS_ALT_REF)),
        make=_text(exif.get(MAKE)), model=_text(exif.get(MODEL)), width=width, height=height,
        orientation=orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else None)


def hash_and_meta(path: str | Path) -> tuple[str, PhotoMeta]:
    """The content hash and metadata of a file from one read. CrackDeskError only when the file cannot be
    read at all (as `hashing.file_hash`); a file Pillow cannot open still gets its hash, with empty metadata."""
    data = read_file(path)
    digest = bytes_hash(data)
    try:
        with open_image(path, data=data) as image:
            return digest, read_meta(image)
    except CrackDeskError:
        return digest, PhotoMeta()
    except Exception:  # a Pillow bug on one odd header: the hash still counts
        return digest, PhotoMeta()


# -- the pieces ------------------------------------------------------------------------------------

def _exif_of(image: Image.Image):
    """The image's EXIF without decoding pixels: a PNG whose eXIf chunk follows the picture data would need
    a full decode to find it (Pillow's getexif loads the image); the hasher must not pay that per photo."""
    try:
        if image.format == "PNG" and "exif" not in image.info:
            return None
        return image.getexif()
    except Exception:
        return None


def _ifd(exif, tag: int) -> dict:
    try:
        found = exif.get_ifd(tag)
        return found if isinstance(found, dict) else {}
    except Exception:
        return {}


def _number(value) -> float | None:
    """A finite float from an EXIF rational, int or float (a zero denominator gives NaN in Pillow)."""
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _ref(value) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return value.strip("\x00 ").upper()[:1] if isinstance(value, str) else None


def _coordinate(dms, ref, letters: str, limit: float) -> float | None:
    """Degrees from (degrees, minutes, seconds) and its reference letter (N/S or E/W); None if anything is off."""
    if not isinstance(dms, (tuple, list)) or not 1 <= len(dms) <= 3:
        return None
    parts = [_number(v) for v in dms]
    if any(p is None or p < 0 for p in parts):
        return None
    parts += [0.0] * (3 - len(parts))
    degrees = parts[0] + parts[1] / 60 + parts[2] / 3600
    letter = _ref(ref)
    # 60 itself is allowed: cameras round 59.9999 seconds up rather than carry the minute.
    if not letter or letter not in letters or parts[1] > 60 or parts[2] > 60 or degrees > limit:
        return None
    return -degrees if letter == letters[1] else degrees


def _altitude(value, ref) -> float | None:
    alt = _number(value)
    if alt is None or abs(alt) > 100_000:  # higher than any camera flies: garbage
        return None
    if isinstance(ref, bytes):
        ref = ref[:1] == b"\x01"
    elif isinstance(ref, int):
        ref = ref == 1
    else:
        ref = False
    return -alt if ref else alt


EDIT_GAP = timedelta(minutes=10)  # a camera writes its file within seconds of the shot; an edit comes later


def edited_after_capture(exif) -> bool:
    """True when DateTime (the file's last change, which editors update) is more than EDIT_GAP after
    DateTimeOriginal (the shot): the photo was retouched by a tool that kept the camera's thumbnail of the photo
    before the edit, at the same size, which `images.camera_size_matches` cannot see. False when either is
    missing or unreadable."""
    changed, taken = _timestamp(exif.get(DATETIME)), _timestamp(_ifd(exif, EXIF_IFD).get(DATETIME_ORIGINAL))
    if changed is None or taken is None:
        return False
    return datetime.fromisoformat(changed) - datetime.fromisoformat(taken) > EDIT_GAP


def _timestamp(value, offset=None) -> str | None:
    """ISO 8601 from EXIF's 'YYYY:MM:DD HH:MM:SS' (cameras also write '-' or blanks; all zeros means unset)."""
    text = _text(value, 40)
    if text is None:
        return None
    text = text.replace("-", ":").replace("T", " ")
    try:
        moment = datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    if moment.year < 1900:
        return None
    iso = moment.isoformat()
    offset = _text(offset, 10)
    return iso + offset if offset and _OFFSET.match(offset) else iso


def _text(value, limit: int = MAX_TEXT) -> str | None:
    """Printable text from an EXIF string (or bytes); None for empty, binary or absurdly long values."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    value = value.split("\x00", 1)[0].strip()
    if not value or len(value) > limit or not value.isprintable():
        return None
    return value

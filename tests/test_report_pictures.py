"""The findings' pictures: the thumbnail a camera embeds in EXIF is used when it shows the whole photo
(upright), the photo is decoded otherwise, and a large photo's stored tiles are drawn over either."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from crackdesk.core.images import embedded_thumbnail
from crackdesk.report.pictures import THUMB_PX, finding_picture
from factories import camera_exif, with_thumbnail


def photo_with(path, size, thumbnail=None, orientation=None):
    exif = camera_exif(1.0, 2.0, orientation=orientation)
    Image.new("RGB", size, (128, 128, 128)).save(path, exif=with_thumbnail(exif, thumbnail) if thumbnail else exif)
    return path


def colour(picture) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(picture.jpeg)).convert("RGB"), np.float32).mean(axis=(0, 1))


def test_the_embedded_thumbnail_stands_in_for_the_photo(tmp_path):
    path = photo_with(tmp_path / "a.jpg", (640, 480), Image.new("RGB", (160, 120), (0, 0, 255)))
    picture = finding_picture(path)
    assert (picture.width, picture.height) == (160, 120)
    r, g, b = colour(picture)
    assert b > 200 and r < 60  # the camera's (blue) thumbnail, not the (grey) photo decoded


def test_a_turned_camera_thumbnail_is_shown_upright(tmp_path):
    marked = Image.new("RGB", (160, 120), (0, 0, 255))
    marked.paste((255, 0, 0), (0, 0, 40, 120))  # the left edge red
    path = photo_with(tmp_path / "a.jpg", (640, 480), marked, orientation=6)  # held upright: turn right
    upright = embedded_thumbnail(path)
    assert upright.size == (120, 160)
    assert np.asarray(upright)[:20].mean(axis=(0, 1))[0] > 200  # the left edge is on top now


def test_a_letterboxed_or_missing_thumbnail_means_the_photo_is_decoded(tmp_path):
    letterboxed = photo_with(tmp_path / "a.jpg", (600, 400), Image.new("RGB", (160, 120), (0, 0, 255)))
    assert embedded_thumbnail(letterboxed) is None  # 3:2 photo, 4:3 thumbnail: not the whole photo
    picture = finding_picture(letterboxed)
    assert (picture.width, picture.height) == (THUMB_PX, 107) and abs(colour(picture) - 128).max() < 8
    assert embedded_thumbnail(photo_with(tmp_path / "b.jpg", (640, 480))) is None
    png = tmp_path / "c.png"
    Image.new("RGB", (64, 48), "white").save(png)
    assert embedded_thumbnail(png) is None and finding_picture(png).width == 64


def test_a_thumbnail_too_small_or_of_a_photo_cut_short_is_not_used(tmp_path):
    path = photo_with(tmp_path / "a.jpg", (640, 480), Image.new("RGB", (160, 120), (0, 0, 255)))
    assert embedded_thumbnail(path, min_side=160).size == (160, 120)
    assert embedded_thumbnail(path, min_side=161) is None  # shown larger than the camera made it: decode
    data = path.read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[:-500])  # its EXIF intact, the picture's end missing
    assert embedded_thumbnail(cut) is None  # decoding it says "truncated", as for photos without a thumbnail


def test_a_photo_cropped_after_it_was_taken_is_decoded_not_shown_by_its_old_thumbnail(tmp_path):
    exif = camera_exif(1.0, 2.0)
    exif.get_ifd(0x8769).update({0xA002: 640, 0xA003: 480})  # PixelX/YDimension, as cameras write them
    blob = with_thumbnail(exif, Image.new("RGB", (160, 120), (0, 0, 255)))
    Image.new("RGB", (640, 480), (128, 128, 128)).save(tmp_path / "camera.jpg", exif=blob)
    assert embedded_thumbnail(tmp_path / "camera.jpg").size == (160, 120)
    # A script crops it to the same 4:3 shape and copies the camera's EXIF: the thumbnail still shows the uncropped
    # photo, so the photo itself is decoded.
    Image.new("RGB", (600, 450), (128, 128, 128)).save(tmp_path / "cropped.jpg", exif=blob)
    assert embedded_thumbnail(tmp_path / "cropped.jpg") is None
    assert abs(colour(finding_picture(tmp_path / "cropped.jpg")) - 128).max() < 8


def test_a_photo_retouched_after_it_was_taken_is_decoded_not_shown_by_its_old_thumbnail(tmp_path):
    """Same size, so PixelX/YDimension cannot tell; the editor's DateTime, a day after the shot, does."""
    exif = camera_exif(1.0, 2.0, captured="2026:05:01 10:00:00")  # DateTime a minute after: as a camera may
    blob = with_thumbnail(exif, Image.new("RGB", (160, 120), (0, 0, 255)))
    Image.new("RGB", (640, 480), (128, 128, 128)).save(tmp_path / "camera.jpg", exif=blob)
    assert embedded_thumbnail(tmp_path / "camera.jpg").size == (160, 120)
    exif[0x0132] = "2026:05:02 09:30:00"
    blob = with_thumbnail(exif, Image.new("RGB", (160, 120), (0, 0, 255)))
    Image.new("RGB", (640, 480), (128, 128, 128)).save(tmp_path / "retouched.jpg", exif=blob)
    assert embedded_thumbnail(tmp_path / "retouched.jpg") is None
    assert abs(colour(finding_picture(tmp_path / "retouched.jpg")) - 128).max() < 8


def test_a_large_photo_gets_its_heatmap_with_the_crack_tiles_outlined(tmp_path):
    path = photo_with(tmp_path / "a.jpg", (640, 480), Image.new("RGB", (160, 120), (128, 128, 128)))
    tiles = [(x, y, 320, 240, 0.9 if (x, y) == (320, 0) else 0.1) for y in (0, 240) for x in (0, 320)]
    picture = finding_picture(path, tiles, 0.5)
    assert (picture.tiles, picture.crack_tiles) == (4, 1)
    pixels = np.asarray(Image.open(io.BytesIO(picture.jpeg)).convert("RGB"), np.int32)
    redness = pixels[..., 0] - pixels[..., 2]
    assert redness[5:55, 85:155].mean() > 40 > redness[65:115, 5:75].mean()  # the top right tile, only


def test_an_unreadable_finding_says_why(tmp_path):
    (tmp_path / "gone.jpg").write_bytes(b"not a jpeg")
    picture = finding_picture(tmp_path / "gone.jpg")
    assert picture.jpeg is None and "not an image" in picture.error

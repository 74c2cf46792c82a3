import io

import numpy as np
import pytest
from PIL import Image

from crackdesk.core.errors import ImageError
from crackdesk.core.images import image_size, load_rgb


def save(img, path, **kw):
    img.save(path, **kw)
    return path


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = save(img, tmp_path / "rot.jpg", exif=exif)
    assert load_rgb(path).size == (20, 40)
    assert image_size(path) == (20, 40)


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "RGBA", "LA", "I;16", "1"])
def test_modes_become_rgb(tmp_path, mode):
    base = Image.new("RGB", (16, 16), (200, 100, 50))
    if mode == "I;16":
        img = Image.fromarray(np.full((16, 16), 40000, np.uint16))
        path = save(img, tmp_path / "deep.png")
    else:
        img = base.convert(mode)
        path = save(img, tmp_path / f"m.{'tif' if mode == 'CMYK' else 'png'}")
    out = load_rgb(path)
    assert out.mode == "RGB" and out.size == (16, 16)
    if mode == "I;16":  # 40000 of 65535 must map to ~155, not clip to 255
        assert 150 <= np.asarray(out)[0, 0, 0] <= 160


def test_transparent_pixels_composite_on_white(tmp_path):
    img = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    out = load_rgb(save(img, tmp_path / "clear.png"))
    assert tuple(np.asarray(out)[0, 0]) == (255, 255, 255)


def test_zero_byte_file(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match="empty.jpg: empty file"):
        load_rgb(tmp_path / "empty.jpg")


def test_non_image(tmp_path):
    (tmp_path / "notes.jpg").write_text("not a picture at all")
    with pytest.raises(ImageError, match="notes.jpg: not an image"):
        load_rgb(tmp_path / "notes.jpg")


def test_truncated_jpeg(tmp_path):
    buf = io.BytesIO()
    Image.effect_noise((200, 200), 50).convert("RGB").save(buf, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageError, match="cut.jpg: truncated"):
        load_rgb(tmp_path / "cut.jpg")


def test_corrupt_png_data(tmp_path):
    buf = io.BytesIO()
    Image.effect_noise((64, 64), 50).convert("RGB").save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[100:140] = b"\x00" * 40  # damage the compressed pixel data
    (tmp_path / "bad.png").write_bytes(bytes(data))
    with pytest.raises(ImageError, match="bad.png"):
        load_rgb(tmp_path / "bad.png")


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = save(Image.new("L", (3000, 3000)), tmp_path / "big.png")
    with pytest.raises(ImageError, match="too large"):
        load_rgb(path, max_pixels=1_000_000)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="file not found"):
        load_rgb(tmp_path / "nope.jpg")


def test_draft_mode_shrinks_large_jpegs(tmp_path):
    path = save(Image.new("RGB", (2000, 1600), "gray"), tmp_path / "photo.jpg")
    out = load_rgb(path, draft_size=(160, 160))
    assert 160 <= min(out.size) < 1600 // 2


def test_reading_a_file_allocates_its_size_not_the_size_limit(tmp_path):
    """read_file used to ask Python for a buffer of the 1 GiB limit (mapped and unmapped for every 15 KB patch)."""
    import tracemalloc

    from crackdesk.core.hashing import read_file

    content = bytes(range(256)) * 60
    (tmp_path / "patch.jpg").write_bytes(content)
    tracemalloc.start()
    try:
        data = read_file(tmp_path / "patch.jpg")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert data == content
    assert peak < 1 << 20, f"reading 15 KB allocated {peak / 2**20:.0f} MiB"


def test_a_file_that_grows_while_read_is_read_whole(tmp_path, monkeypatch):
    """fstat's size is only a hint: bytes appended after it are still read (up to the limit)."""
    import os

    from crackdesk.core import hashing

    path = tmp_path / "growing.jpg"
    path.write_bytes(b"a" * 1000)
    real_fstat = os.fstat

    def fstat_then_append(fd):
        st = real_fstat(fd)
        with open(path, "ab") as f:
            f.write(b"b" * 500)
        return st

    monkeypatch.setattr(hashing.os, "fstat", fstat_then_append)
    assert hashing.read_file(path) == b"a" * 1000 + b"b" * 500
    path.write_bytes(b"a" * 1000)
    with pytest.raises(ImageError, match="too large"):
        hashing.read_file(path, max_bytes=1200)

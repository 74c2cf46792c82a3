"""Decoding images with Pillow into 8-bit RGB, with clear errors for anything unreadable."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError

from .errors import ImageError
from .hashing import read_ends, read_file

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
# One limit for every decode, checked from the header before any pixel is decoded (decompression bombs,
# stitched panoramas): 150 Mpx is ~450 MB as 8-bit RGB, far above any camera photo. Classification, heatmaps,
# thumbnails and training all use it, so no photo is decoded in full by one of them and refused by another.
MAX_PIXELS = 150_000_000

# Truncated files must fail, not silently decode as grey (Pillow's default is already False; be explicit).
ImageFile.LOAD_TRUNCATED_IMAGES = False
Image.MAX_IMAGE_PIXELS = None  # we check the size ourselves, before decoding


def is_image_name(name: str) -> bool:
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in IMAGE_SUFFIXES


def open_image(path: str | Path, max_pixels: int = MAX_PIXELS, data: bytes | None = None) -> Image.Image:
    """Open (lazily) an image file, or its bytes already read, checking it is an image and not too large."""
    path = Path(path)
    if data is None:
        data = read_file(path)  # a regular file only: a pipe or device named .jpg never reaches Pillow
    try:
        if len(data) == 0:
            raise ImageError("empty file (0 bytes)", path)
        image = Image.open(io.BytesIO(data))
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not an image Pillow can read (unknown or corrupt format)", path) from None
    except OSError as e:
        raise ImageError(f"cannot open: {e.strerror or e}", path) from None
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise ImageError(f"image too large ({width}x{height} = {width * height / 1e6:.0f} Mpx, limit "
                         f"{max_pixels / 1e6:.0f} Mpx): decoding it would need {width * height * 3 / 2**30:.1f} GiB "
                         "of memory; split it into smaller images", path)
    return image


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB from any mode: grayscale, palette, CMYK, 16-bit, float and alpha (composited on white)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit / 32-bit grayscale: scale the used range to 8 bits rather than clipping at 255.
        import numpy as np

        a = np.asarray(image, dtype=np.float32)
        hi = float(a.max()) if a.size else 0.0
        scale = 255.0 / 65535.0 if hi > 255 and image.mode.startswith("I;16") else (255.0 / hi if hi > 255 else 1.0)
        image = Image.fromarray(np.clip(a * scale, 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_rgb(path: str | Path, max_pixels: int = MAX_PIXELS, draft_size: tuple[int, int] | None = None,
             data: bytes | None = None) -> Image.Image:
    """Decode an image fully into 8-bit RGB with its EXIF orientation applied.

    `draft_size` lets JPEG decoding scale down by 1/2, 1/4 or 1/8 while staying at least that size
    (several times faster for camera photos that will be shrunk anyway).
    `data`, when given, is the file's content already read (the path is then only used in messages).
    Raises ImageError naming the file for every kind of unreadable input.
    """
    return decode_rgb(open_image(path, max_pixels, data), path, draft_size)


def decode_rgb(image: Image.Image, path: str | Path, draft_size: tuple[int, int] | None = None) -> Image.Image:
    """The decoding half of `load_rgb`, for an image `open_image` already opened (whose header the
    caller has read, e.g. for its stored size). Closes `image`; errors name `path`."""
    try:
        with image:
            if draft_size is not None and image.format == "JPEG":
                image.draft("RGB", draft_size)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # EXIF oddities: we only want the orientation
                image.load()
                image = ImageOps.exif_transpose(image)
            return to_rgb(image)
    except ImageError:
        raise
    except OSError as e:
        message = str(e)
        if "truncated" in message or "end of file" in message.lower():
            raise ImageError("truncated image (the file ends before the picture does)", path) from None
        raise ImageError(f"corrupt image data ({message})", path) from None
    except (ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ImageError(f"corrupt image ({e})", path) from None


EXIF_HEAD_BYTES = 1 << 17  # a JPEG's EXIF (one APP1 segment, 64 KiB at most) lies within its first 128 KiB
JPEG_END = b"\xff\xd9"
MIN_EMBEDDED_PX = 120  # a smaller embedded thumbnail is too coarse to show
# EXIF orientation -> the transposition that shows the picture upright (as ImageOps.exif_transpose does).
UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
           5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
           8: Image.Transpose.ROTATE_90}


def embedded_thumbnail(path: str | Path, min_side: int = MIN_EMBEDDED_PX) -> Image.Image | None:
    """The JPEG thumbnail a camera put in the photo's EXIF (often 160x120), upright, if it shows the whole photo
    (of its shape, and of a photo still at the size the camera recorded) and is at least `min_side` on its longer
    side; else None. Decoding a 12 Mpx photo costs 30-45 ms even at 1/8 scale (the entropy decoding of its 3-5 MB
    is the floor); this reads its first 128 KiB and last two bytes. A photo without its end marker (a copy cut
    short) gets None, so decoding it reports the truncation."""
    try:
        head, end = read_ends(path, EXIF_HEAD_BYTES, len(JPEG_END))
        if end != JPEG_END:
            return None
        with Image.open(io.BytesIO(head)) as photo:
            if photo.format != "JPEG" or not photo.info.get("exif", b"").startswith(b"Exif\0\0"):
                return None
            exif = photo.getexif()
            ifd1 = exif.get_ifd(ExifTags.IFD.IFD1)
            start, length = int(ifd1.get(0x0201, 0)), int(ifd1.get(0x0202, 0))
            tiff = photo.info["exif"][6:]  # offsets count from the TIFF header, after "Exif\0\0"
            if not start or not 0 < length <= len(tiff) - start:
                return None
            width, height, orientation = *photo.size, exif.get(0x0112, 1)
            from .exif import edited_after_capture  # exif.py reads images through this module

            if not camera_size_matches(exif, width, height) or edited_after_capture(exif):
                return None
        thumbnail = Image.open(io.BytesIO(tiff[start:start + length]))
        # Some cameras letterbox a 3:2 photo into a 4:3 thumbnail: then it is not the whole photo, undistorted.
        if max(thumbnail.size) < max(min_side, 1) or \
                abs(thumbnail.width * height - thumbnail.height * width) > 0.02 * width * thumbnail.height:
            return None
        thumbnail.load()
        thumbnail = thumbnail.convert("RGB")
        return thumbnail.transpose(UPRIGHT[orientation]) if orientation in UPRIGHT else thumbnail
    except Exception:  # no usable thumbnail (a missing, truncated or odd one): decode the photo instead
        return None


def camera_size_matches(exif: Image.Exif, width: int, height: int) -> bool:
    """False when the EXIF's PixelXDimension/PixelYDimension (what the camera wrote) differ from the picture's
    size: the photo was cropped or resized by a tool that copied the camera's EXIF, and with it a thumbnail of
    the photo before the edit. True when they match or are absent."""
    try:
        sub = exif.get_ifd(ExifTags.IFD.Exif)
        stated = int(sub.get(0xA002, 0)), int(sub.get(0xA003, 0))
    except Exception:  # an odd sub-IFD says nothing about the size
        return True
    return not all(stated) or stated in ((width, height), (height, width))


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) as displayed (EXIF orientation applied), read from the header only."""
    with open_image(path) as image:
        width, height = image.size
        try:
            orientation = image.getexif().get(0x0112, 1)
        except Exception:  # a broken EXIF block must not make the image unusable
            orientation = 1
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)

"""Where the photos were taken: their GPS positions drawn with Pillow on plain axes, cracked ones on top.

No map tiles: a report must open offline, and tiles would need the internet (and their licence). Equal
metres per pixel both ways (longitude scaled by cos(latitude)), degree ticks and a scale bar in metres, so
distances on site read off the picture; findings.geojson puts the same points on a real map in QGIS.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SIZE = (960, 620)
MARGIN = (78, 20, 20, 46)  # left (latitude labels), top, right, bottom (longitude labels, scale bar)
MIN_SPAN_M = 40.0  # photos all taken within a few metres still get a readable frame
METRES_PER_DEGREE = 111_320.0
GREY, RED, ORANGE, INK = (150, 150, 150), (205, 30, 30), (240, 140, 0), (40, 40, 40)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the bitmap font
        return ImageFont.load_default()


def nice_step(span: float, count: int = 5) -> float:
    """A round step (1, 2 or 5 times a power of ten) giving about `count` ticks over `span`."""
    raw = span / count
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def gps_plot(points: list[tuple[float, float, bool, bool]], size=SIZE) -> bytes | None:
    """PNG of (lat, lon, cracked, reviewed) points; None when there are none."""
    if not points:
        return None
    lat = np.array([p[0] for p in points])
    lon = np.array([p[1] for p in points])
    mid = math.radians((lat.min() + lat.max()) / 2)
    x_m = (lon - lon.min()) * METRES_PER_DEGREE * max(math.cos(mid), 0.01)  # metres east of the westmost
    y_m = (lat - lat.min()) * METRES_PER_DEGREE
    left, top, right, bottom = MARGIN
    width, height = size[0] - left - right, size[1] - top - bottom
    span = max(x_m.max() / width, y_m.max() / height, MIN_SPAN_M / min(width, height)) * 1.1  # metres a pixel
    cx, cy = x_m.max() / 2, y_m.max() / 2

    def to_px(xm, ym):
        return left + width / 2 + (xm - cx) / span, top + height / 2 - (ym - cy) / span

    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle([left, top, left + width, top + height], outline=INK)
    _ticks(draw, to_px, lat.min(), lon.min(), mid, span, cx, cy, (left, top, width, height))
    _scale_bar(draw, span, left + 10, top + height - 14)
    px, py = to_px(x_m, y_m)
    order = sorted(range(len(points)), key=lambda i: points[i][2])  # cracked last, so on top
    for i in order:
        x, y, (_, _, cracked, reviewed) = px[i], py[i], points[i]
        if not cracked:
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=GREY)
        elif reviewed:
            draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=RED, outline=INK)
        else:
            draw.ellipse([x - 5, y - 5, x + 5, y + 5], outline=ORANGE, width=3)
    _legend(draw, points, left + 10, top + 8)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def _ticks(draw, to_px, lat0, lon0, mid, span, cx, cy, box) -> None:
    """Latitude ticks on the left, longitude ticks below, in degrees with as many decimals as they need."""
    left, top, width, height = box
    font = _font(13)
    scale_x = METRES_PER_DEGREE * max(math.cos(mid), 0.01)
    lat_lo = lat0 + (cy - height / 2 * span) / METRES_PER_DEGREE
    lat_hi = lat0 + (cy + height / 2 * span) / METRES_PER_DEGREE
    lon_lo = lon0 + (cx - width / 2 * span) / scale_x
    lon_hi = lon0 + (cx + width / 2 * span) / scale_x
    for lo, hi, vertical in ((lat_lo, lat_hi, True), (lon_lo, lon_hi, False)):
        step = nice_step(hi - lo)
        decimals = max(0, -math.floor(math.log10(step)))
        value = math.ceil(lo / step) * step
        while value <= hi:
            if vertical:
                _, y = to_px(0, (value - lat0) * METRES_PER_DEGREE)
                draw.line([left - 4, y, left, y], fill=INK)
                draw.line([left, y, left + width, y], fill=(235, 235, 235))
                draw.text((left - 6, y), f"{value:.{decimals}f}", fill=INK, font=font, anchor="rm")
            else:
                x, _ = to_px((value - lon0) * scale_x, 0)
                draw.line([x, top + height, x, top + height + 4], fill=INK)
                draw.line([x, top, x, top + height], fill=(235, 235, 235))
                draw.text((x, top + height + 6), f"{value:.{decimals}f}", fill=INK, font=font, anchor="mt")
            value += step
    nx, ny = left + width - 16, top + 10  # a north arrow (the default font has no arrow glyph)
    draw.polygon([(nx, ny), (nx - 6, ny + 14), (nx + 6, ny + 14)], fill=INK)
    draw.text((nx, ny + 17), "N", fill=INK, font=_font(14), anchor="mt")
    draw.text((left + width / 2, top + height + 26), "longitude (\u00b0, WGS84); latitude on the left",
              fill=INK, font=font, anchor="mt")


def _scale_bar(draw, metres_per_px: float, x: int, y: int) -> None:
    metres = nice_step(metres_per_px * 150, 1)
    length = metres / metres_per_px
    draw.line([x, y, x + length, y], fill=INK, width=3)
    text = f"{metres / 1000:g} km" if metres >= 1000 else f"{metres:g} m"
    draw.text((x + length + 6, y), text, fill=INK, font=_font(13), anchor="lm")


def _legend(draw, points, x: int, y: int) -> None:
    font = _font(13)
    confirmed = sum(1 for p in points if p[2] and p[3])
    model_only = sum(1 for p in points if p[2] and not p[3])
    rest = len(points) - confirmed - model_only
    rows = [("crack, confirmed by a person", confirmed, "filled"), ("crack, model only (not reviewed)", model_only,
                                                                     "ring"), ("no crack / no verdict", rest, "dot")]
    draw.rectangle([x - 6, y - 4, x + 300, y + 3 * 18 + 2], fill=(255, 255, 255), outline=(200, 200, 200))
    for k, (text, count, kind) in enumerate(rows):
        cy = y + 8 + 18 * k
        if kind == "filled":
            draw.ellipse([x, cy - 5, x + 10, cy + 5], fill=RED, outline=INK)
        elif kind == "ring":
            draw.ellipse([x, cy - 5, x + 10, cy + 5], outline=ORANGE, width=3)
        else:
            draw.ellipse([x + 3, cy - 2, x + 7, cy + 2], fill=GREY)
        draw.text((x + 18, cy), f"{text}: {count:,}", fill=INK, font=font, anchor="lm")

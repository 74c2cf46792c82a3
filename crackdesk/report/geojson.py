"""findings.geojson: one Point per photo that has a GPS position, for QGIS or any GIS (RFC 7946: WGS84,
[longitude, latitude]). Every located photo is in it, not only the cracked ones: a map of where nothing was
found is part of an inspection too; style or filter on `label`."""

from __future__ import annotations

import json
from pathlib import Path

from ..core.atomic import atomic_writer

DECIMALS = 7  # 1e-7 degrees is about a centimetre: below any phone's GPS error


def feature(photo) -> dict:
    meta = photo.meta
    return {"type": "Feature",
            "geometry": {"type": "Point", "coordinates": [round(meta.lon, DECIMALS), round(meta.lat, DECIMALS)]},
            "properties": {"path": photo.path, "label": photo.verdict,
                           "p_crack": None if photo.p_crack is None else round(photo.p_crack, 4),
                           "reviewed": photo.reviewed, "captured": meta.captured, "subfolder": photo.subfolder}}


def write_geojson(path: Path, data) -> int:
    """Write the located photos of a report (ReportData); returns how many features."""
    located = [p for p in data.photos if p.meta is not None and p.meta.has_gps]
    with atomic_writer(path, "w", "GeoJSON", encoding="utf-8") as f:
        # One feature a line: a 40,000-photo file stays readable in a text editor and diffable.
        f.write('{"type": "FeatureCollection", "name": ' + json.dumps(Path(data.folder).name) + ', "features": [\n')
        for n, photo in enumerate(located):
            f.write(("," if n else "") + json.dumps(feature(photo), ensure_ascii=False) + "\n")
        f.write("]}\n")
    return len(located)

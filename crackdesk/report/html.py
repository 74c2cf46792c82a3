"""report.html: one self-contained file (pictures embedded as data: URIs, style and script inline, no link
outside itself) that any browser opens offline, and a person can mail or archive with the inspection.

Thousands of findings stay usable: the table is split into pages of `PAGE_ROWS` rows that a few lines of
inline script show one at a time (hidden rows cost the browser no layout and their pictures no decoding);
without script, and when printed, every row shows.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from ..core.atomic import atomic_writer
from . import text

PAGE_ROWS = 100

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#222;margin:0;
background:#f4f4f2}
main{max-width:1100px;margin:0 auto;padding:24px 28px 48px;background:#fff}
h1{font-size:26px;margin:0 0 6px}h2{font-size:19px;margin:30px 0 10px;border-bottom:2px solid #ddd;padding-bottom:4px}
.byline{color:#555;margin:0}.notes{background:#fff4e0;border-left:4px solid #f0a000;padding:8px 14px;margin:16px 0}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{flex:1 1 150px;border:1px solid #ddd;border-radius:6px;padding:8px 12px}
.card b{display:block;font-size:24px}.card.warn b{color:#c66a00}.card.crack b{color:#c21d1d}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #e3e3e3;padding:5px 8px;text-align:left;
vertical-align:top}th{background:#f0f0ee;font-weight:600}td.num,th.num{text-align:right}
.pic img{display:block;border-radius:3px}.path{font-family:ui-monospace,"DejaVu Sans Mono",monospace;
word-break:break-all}.muted{color:#666;font-size:12px}.confirmed{color:#1d6b2f;font-weight:600}
.unreviewed{color:#b35c00;font-weight:700}tr.unreviewed-row{background:#fffaf2}
.plot{max-width:100%;height:auto;border:1px solid #ddd}.pager{margin:8px 0}.pager button{margin-right:6px}
table.paged tbody.page{display:none}table.paged tbody.page.shown{display:table-row-group}
@media print{table.paged tbody.page{display:table-row-group}.pager{display:none}body{background:#fff}}
"""

SCRIPT = """
(function(){var t=document.getElementById('findings-table');if(!t)return;var pages=t.tBodies,n=pages.length;
if(n<2)return;t.classList.add('paged');var cur=0,info=document.getElementById('page-info');
function show(k){cur=Math.max(0,Math.min(n-1,k));for(var i=0;i<n;i++)pages[i].classList.toggle('shown',i===cur);
info.textContent='page '+(cur+1)+' of '+n;}
document.getElementById('prev').onclick=function(){show(cur-1)};
document.getElementById('next').onclick=function(){show(cur+1)};
document.getElementById('all').onclick=function(){t.classList.toggle('paged')};
document.getElementById('pager').hidden=false;show(0);})();
"""


def data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def write_html(path: Path, data, pictures, plot_png: bytes | None) -> None:
    with atomic_writer(path, "w", "HTML report", encoding="utf-8") as f:
        f.write(f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
                f'<meta name="viewport" content="width=device-width,initial-scale=1">'
                f"<title>{escape(data.title)}</title><style>{STYLE}</style></head><body><main>\n")
        _header(f, data)
        _summary(f, data)
        _model(f, data)
        _subfolders(f, data)
        _map(f, data, plot_png)
        _findings(f, data, pictures)
        f.write(f'<p class="muted">{escape(text.colophon(data))}</p>\n</main><script>{SCRIPT}</script>'
                "</body></html>\n")


def _header(f, data) -> None:
    f.write(f"<header><h1>{escape(data.title)}</h1>")
    for line in text.byline(data):
        f.write(f'<p class="byline">{escape(line)}</p>')
    f.write("</header>\n")
    for note in data.notes:
        f.write(f'<p class="notes">{escape(note)}</p>\n')


def _summary(f, data) -> None:
    f.write('<section id="summary"><h2>Summary</h2><div class="cards">')
    for label, value, kind in text.summary_cards(data):
        f.write(f'<div class="card {kind}"><b>{value:,}</b>{escape(label)}</div>')
    f.write("</div></section>\n")


def _table(f, header: list[str] | None, rows: list[list[str]], numeric_from: int = 1) -> None:
    f.write("<table>")
    if header:
        f.write("<thead><tr>" + "".join(f'<th class="{"num" if k >= numeric_from else ""}">{escape(h)}</th>'
                                        for k, h in enumerate(header)) + "</tr></thead>")
    f.write("<tbody>")
    for row in rows:
        f.write("<tr>" + "".join(f'<td class="{"num" if k >= numeric_from else ""}">{escape(str(v))}</td>'
                                 for k, v in enumerate(row)) + "</tr>")
    f.write("</tbody></table>\n")


def _model(f, data) -> None:
    f.write('<section id="model"><h2>Model</h2>')
    _table(f, None, text.model_rows(data.model), numeric_from=2)
    f.write("</section>\n")


def _subfolders(f, data) -> None:
    f.write(f'<section id="subfolders"><h2>Folder and sub-folders</h2><p class="path">{escape(data.folder)}</p>')
    header, rows = text.subfolder_table(data)
    _table(f, header, rows)
    f.write("</section>\n")


def _map(f, data, plot_png: bytes | None) -> None:
    f.write('<section id="map"><h2>Where the photos were taken</h2>')
    if plot_png is None:
        f.write("<p>No photo carries a GPS position.</p>")
    else:
        f.write(f'<p>{escape(text.map_caption(data))}</p><img class="plot" alt="GPS positions of the photos" '
                f'src="{data_uri("image/png", plot_png)}">')
    f.write("</section>\n")


def _findings(f, data, pictures) -> None:
    findings = data.findings
    f.write(f'<section id="findings"><h2>Findings: {len(findings):,} photos judged cracked</h2>'
            f"<p>{escape(text.findings_intro(data))}</p>")
    if not findings:
        f.write("<p><b>No findings.</b></p></section>\n")
        return
    f.write('<div class="pager" id="pager" hidden><button id="prev" type="button">&larr; previous</button>'
            '<button id="next" type="button">next &rarr;</button><button id="all" type="button">show all / '
            'pages</button> <span id="page-info"></span></div>')
    f.write('<table id="findings-table"><thead><tr><th>#</th><th>picture</th><th>photo</th><th class="num">'
            "P(crack)</th><th>reviewed</th><th>captured</th><th>GPS</th></tr></thead>")
    for start in range(0, len(findings), PAGE_ROWS):
        f.write('<tbody class="page">')
        for n in range(start, min(start + PAGE_ROWS, len(findings))):
            _finding_row(f, n + 1, findings[n], pictures[n])
        f.write("</tbody>")
    f.write("</table></section>\n")


def _finding_row(f, number: int, photo, picture) -> None:
    reviewed = photo.reviewed
    f.write(f'<tr class="{"" if reviewed else "unreviewed-row"}"><td>{number}</td><td class="pic">')
    if picture.jpeg is not None:
        f.write(f'<img width="{picture.width}" height="{picture.height}" alt="" '
                f'src="{data_uri("image/jpeg", picture.jpeg)}">')
    note = text.picture_note(picture)
    if note:
        f.write(f'<div class="muted">{escape(note)}</div>')
    f.write(f'</td><td><div class="path">{escape(photo.path)}</div><div class="muted">{escape(photo.subfolder)}'
            f'</div></td><td class="num">{escape(text.probability(photo.p_crack))}</td>')
    if reviewed:
        f.write('<td class="confirmed">confirmed by a person</td>')
    else:
        f.write('<td class="unreviewed">NOT REVIEWED<div class="muted">model only</div></td>')
    f.write(f"<td>{escape(text.when(photo))}</td><td>{escape(text.where(photo))}</td></tr>")

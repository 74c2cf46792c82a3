"""report.pdf: the HTML's content paginated for A4, drawn with Qt's own QPdfWriter and QPainter (the only
module of the report that uses Qt; it runs headless on Qt's offscreen platform).

Why this route (docs/decisions.md, note 16): measured on the 2,000-finding table it was the fastest and
leanest of four, it draws file names in any script with the system's fonts, and it needs nothing new. Its
price is laying out by hand, which is also what keeps every table row whole: the whole report is first laid
out into pages of drawing steps (a row that does not fit starts the next page, under a repeated header),
then drawn, so each page can say "page 3 of 41".
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import QBuffer, QIODevice, QMarginsF, QRectF, Qt
from PySide6.QtGui import (QColor, QFont, QFontDatabase, QFontMetricsF, QGuiApplication, QImage, QPageLayout,
                           QPageSize, QPainter, QPdfWriter)

from ..core.atomic import OutputError, atomic_write_bytes
from . import text

DPI = 300
MARGIN_MM = 14
HEADER_MM, FOOTER_MM = 8, 8  # running title above, page number below, inside the margins' frame
PICTURE_MM = (30, 22.5)  # the box a finding's picture is fitted into
TEXT, MUTED, ORANGE, GREEN, RED, RULE = "#222222", "#666666", "#b35c00", "#1d6b2f", "#c21d1d", "#d8d8d8"
WRAP = int(Qt.TextWordWrap)  # at word boundaries; a word longer than its column overflows it
PATH_WRAP = int(Qt.TextWrapAnywhere)  # file paths: a 60-character name must break inside the column
_app = None  # the QGuiApplication made here, when the caller had none (the CLI)

Draw = Callable[[QPainter, float], None]  # draws a block whose top is at y


def ensure_qt() -> None:
    """Fonts and QPdfWriter need a Qt application: reuse the app's, else make an offscreen one (no display).
    A QApplication, not just a QGuiApplication: a process can have only one, and one that later opens a
    window (a script, the test suite) needs the widgets kind."""
    global _app
    if QGuiApplication.instance() is None:
        from PySide6.QtWidgets import QApplication

        _app = QApplication(["crackdesk", "-platform", "offscreen"])


class PageFlow:
    """Blocks of known height stacked down A4 pages; `pages` holds (y, height, draw) steps, nothing is drawn
    yet. Every block lies between `top` and `bottom` of its page, unless one block alone is taller than that."""

    def __init__(self, device: QPdfWriter):
        self.device = device
        self.mm = DPI / 25.4
        rect = device.pageLayout().paintRectPixels(DPI)
        self.width = rect.width()
        self.top = HEADER_MM * self.mm
        self.bottom = rect.height() - FOOTER_MM * self.mm
        self.pages: list[list[tuple[float, float, Draw]]] = [[]]
        self.y = self.top
        self.base = QFontDatabase.systemFont(QFontDatabase.GeneralFont)
        self.on_new_page: Callable[[], None] | None = None  # a table repeats its header here

    def font(self, points: float, bold: bool = False, mono: bool = False) -> QFont:
        font = QFontDatabase.systemFont(QFontDatabase.FixedFont) if mono else QFont(self.base)
        font.setPointSizeF(points)
        font.setBold(bold)
        for ligature in ("liga", "clig"):  # "fi" as one glyph would read back as U+FB01: search and copy miss it
            font.setFeature(QFont.Tag(ligature), 0)
        return font

    def text_height(self, value: str, font: QFont, width: float, flags: int = WRAP) -> float:
        metrics = QFontMetricsF(font, self.device)
        return metrics.boundingRect(QRectF(0, 0, width, 1e6), flags, value).height()

    def new_page(self) -> None:
        if self.y <= self.top and not self.pages[-1]:
            return  # already at the top of an empty page
        self.pages.append([])
        self.y = self.top
        if self.on_new_page is not None:
            self.on_new_page()

    def add(self, height: float, draw: Draw, keep_with: float = 0) -> None:
        """A block; it starts a new page when it (and `keep_with` more, e.g. a heading's first row) will not fit."""
        if self.y + height + keep_with > self.bottom and self.y > self.top:
            self.new_page()
        self.pages[-1].append((self.y, height, draw))
        self.y += height

    def keep(self, height: float) -> None:
        """Start a new page unless `height` more fits on this one (a heading, its caption and its picture)."""
        if self.y + height > self.bottom:
            self.new_page()

    def space(self, mm: float) -> None:
        self.y = min(self.y + mm * self.mm, self.bottom)

    def paragraph(self, value: str, points: float = 9.5, color: str = TEXT, bold: bool = False,
                  after_mm: float = 1.5, keep_with: float = 0, flags: int = WRAP) -> None:
        font, width = self.font(points, bold), self.width
        height = self.text_height(value, font, width, flags)

        def draw(p: QPainter, y: float) -> None:
            p.setFont(font)
            p.setPen(QColor(color))
            p.drawText(QRectF(0, y, width, height + 2), flags, value)

        self.add(height + after_mm * self.mm, draw, keep_with)

    def table(self, columns: list[tuple[str, float]], rows: list[list], points: float = 8.5,
              cell_height: Callable | None = None, draw_cell: Callable | None = None,
              right_from: int | None = None) -> None:
        """Rows of cells under a header repeated on every page (none when every title is empty); a row is never
        split. Widths are in mm; the column of width 0 takes what is left. Text cells from column `right_from`
        on are right-aligned (numbers); other cells are drawn by `draw_cell(p, column, cell, rect)`."""
        pad = 1.2 * self.mm
        widths = [w * self.mm for _, w in columns]
        widths[widths.index(0)] = self.width - sum(widths)
        aligns = [WRAP | int(Qt.AlignRight if right_from is not None and k >= right_from else Qt.AlignLeft)
                  for k in range(len(columns))]
        lefts = [sum(widths[:k]) for k in range(len(widths))]
        font, head_font = self.font(points), self.font(points, bold=True)

        def measure(k, cell) -> float:
            if cell_height is not None and not isinstance(cell, str):
                return cell_height(k, cell, widths[k] - 2 * pad)
            return self.text_height(str(cell), font, widths[k] - 2 * pad)

        titled = any(t for t, _ in columns)
        head_h = max(self.text_height(t, head_font, w - 2 * pad) for (t, _), w in zip(columns, widths)) + 2 * pad

        def draw_header(p: QPainter, y: float) -> None:
            p.fillRect(QRectF(0, y, self.width, head_h), QColor("#efefec"))
            p.setFont(head_font)
            p.setPen(QColor(TEXT))
            for (title, _), left, w, align in zip(columns, lefts, widths, aligns):
                p.drawText(QRectF(left + pad, y + pad, w - 2 * pad, head_h), align, title)

        def row_drawer(cells, height) -> Draw:
            def draw(p: QPainter, y: float) -> None:
                for k, cell in enumerate(cells):
                    rect = QRectF(lefts[k] + pad, y + pad, widths[k] - 2 * pad, height - 2 * pad)
                    if draw_cell is not None and not isinstance(cell, str):
                        draw_cell(p, k, cell, rect)
                    else:
                        p.setFont(font)
                        p.setPen(QColor(TEXT))
                        p.drawText(rect, aligns[k], str(cell))
                p.setPen(QColor(RULE))
                p.drawLine(0, int(y + height), int(self.width), int(y + height))
            return draw

        heights = [max(measure(k, c) for k, c in enumerate(cells)) + 2 * pad for cells in rows]
        previous = self.on_new_page
        if titled:
            self.add(head_h, draw_header, keep_with=heights[0] if heights else 0)  # never alone at a page's foot
            self.on_new_page = lambda: self.add(head_h, draw_header)
        for cells, height in zip(rows, heights):
            self.add(height, row_drawer(cells, height))
        self.on_new_page = previous
        self.space(3)

    def image(self, data: bytes, width_mm: float) -> None:
        picture = QImage.fromData(data)
        width = min(width_mm * self.mm, self.width)
        height = width * picture.height() / max(1, picture.width())
        self.add(height + 2 * self.mm, lambda p, y: p.drawImage(QRectF(0, y, width, height), picture))


def render_pdf(path: Path, data, pictures, plot_png: bytes | None) -> int:
    """Lay out and draw the report into `path` (atomically); returns the number of pages."""
    ensure_qt()
    buffer = QBuffer()
    buffer.open(QIODevice.WriteOnly)
    writer = new_writer(buffer, data)
    flow = lay_out(writer, data, pictures, plot_png)
    painter = QPainter()
    if not painter.begin(writer):
        raise OutputError("Qt could not start drawing the PDF", path)
    try:
        for number, page in enumerate(flow.pages, 1):
            if number > 1:
                writer.newPage()
            _frame(painter, flow, data, number, len(flow.pages))
            for y, _, draw in page:
                draw(painter, y)
    finally:
        painter.end()
    atomic_write_bytes(path, bytes(buffer.data()), "PDF report")
    return len(flow.pages)


def _frame(p: QPainter, flow: PageFlow, data, number: int, total: int) -> None:
    p.setFont(flow.font(7.5))
    p.setPen(QColor(MUTED))
    title = QFontMetricsF(p.font(), flow.device).elidedText(data.title, Qt.ElideRight, flow.width * 0.7)
    p.drawText(QRectF(0, 0, flow.width, flow.top), int(Qt.AlignLeft | Qt.AlignTop), title)
    p.drawText(QRectF(0, 0, flow.width, flow.top), int(Qt.AlignRight | Qt.AlignTop), data.created)
    footer = QRectF(0, flow.bottom + 2 * flow.mm, flow.width, FOOTER_MM * flow.mm)
    p.drawText(footer, int(Qt.AlignLeft | Qt.AlignTop), f"CrackDesk {data.version} \u00b7 {data.model.key}")
    p.drawText(footer, int(Qt.AlignRight | Qt.AlignTop), f"page {number} of {total}")


def lay_out(writer: QPdfWriter, data, pictures, plot_png) -> PageFlow:
    """The report laid out into pages for `writer` (its page layout and resolution set); nothing drawn yet."""
    flow = PageFlow(writer)
    _lay_out(flow, data, pictures, plot_png)
    return flow


def new_writer(device, data) -> QPdfWriter:
    """A QPdfWriter for A4 with the report's margins, resolution and document properties."""
    writer = QPdfWriter(device)
    writer.setResolution(DPI)
    writer.setTitle(data.title)
    writer.setCreator(f"CrackDesk {data.version}")
    writer.setPageLayout(QPageLayout(QPageSize(QPageSize.A4), QPageLayout.Portrait,
                                     QMarginsF(MARGIN_MM, MARGIN_MM, MARGIN_MM, MARGIN_MM), QPageLayout.Millimeter))
    return writer


def _lay_out(flow: PageFlow, data, pictures, plot_png) -> None:
    flow.paragraph(data.title, 20, bold=True, after_mm=2)
    for line in text.byline(data):
        flow.paragraph(line, 9.5, MUTED, after_mm=0.6)
    flow.paragraph(f"Folder: {data.folder}", 9.5, MUTED, after_mm=3, flags=PATH_WRAP)
    for note in data.notes:
        flow.paragraph(note, 10, ORANGE, bold=True, after_mm=2)
    heading = lambda value: flow.paragraph(value, 13, bold=True, after_mm=2, keep_with=20 * flow.mm)  # noqa: E731
    heading("Summary")
    flow.table([("", 0), ("", 30)], [[label, f"{value:,}"] for label, value, _ in text.summary_cards(data)],
               right_from=1)
    heading("Model")
    flow.table([("", 48), ("", 0)], text.model_rows(data.model))
    heading("Folder and sub-folders")
    header, rows = text.subfolder_table(data)
    flow.table([(header[0], 0)] + [(h, 18.5) for h in header[1:]], rows, right_from=1)
    if plot_png is not None:
        plot = QImage.fromData(plot_png)
        flow.keep((30 + 180 * plot.height() / max(1, plot.width())) * flow.mm)
    heading("Where the photos were taken")
    if plot_png is None:
        flow.paragraph("No photo carries a GPS position.")
    else:
        flow.paragraph(text.map_caption(data), 9)
        flow.image(plot_png, 180)
    if data.findings:
        flow.new_page()  # the register starts on its own page
    heading(f"Findings: {len(data.findings):,} photos judged cracked")
    flow.paragraph(text.findings_intro(data), 9, after_mm=2)
    if not data.findings:
        flow.paragraph("No findings.", 11, bold=True)
        return
    _findings_table(flow, data, pictures)


def _findings_table(flow: PageFlow, data, pictures) -> None:
    box_w, box_h = (v * flow.mm for v in PICTURE_MM)
    note_font, path_font = flow.font(7), flow.font(8, mono=True)
    small = flow.font(7.5)

    def cell_height(column, cell, width) -> float:
        if column == 1:  # (picture, note)
            picture, note = cell
            shown = min(box_h, box_w * picture.height / picture.width) if picture.jpeg else 0
            return shown + (flow.text_height(note, note_font, width) + flow.mm if note else 0)
        path, subfolder = cell  # column 2
        return (flow.text_height(path, path_font, width, PATH_WRAP) + flow.text_height(subfolder, small, width)
                + 0.5 * flow.mm)

    def draw_cell(p: QPainter, column, cell, rect: QRectF) -> None:
        if column == 1:
            picture, note = cell
            y = rect.top()
            if picture.jpeg is not None:
                image = QImage.fromData(picture.jpeg)
                scale = min(box_w / image.width(), box_h / image.height())
                p.drawImage(QRectF(rect.left(), y, image.width() * scale, image.height() * scale), image)
                y += image.height() * scale + flow.mm
            if note:
                p.setFont(note_font)
                p.setPen(QColor(MUTED))
                p.drawText(QRectF(rect.left(), y, rect.width(), rect.bottom() - y + 2), WRAP, note)
        elif column == 2:
            path, subfolder = cell
            p.setFont(path_font)
            p.setPen(QColor(TEXT))
            used = flow.text_height(path, path_font, rect.width(), PATH_WRAP)
            p.drawText(QRectF(rect.left(), rect.top(), rect.width(), used + 2), PATH_WRAP, path)
            p.setFont(small)
            p.setPen(QColor(MUTED))
            p.drawText(QRectF(rect.left(), rect.top() + used + 0.5 * flow.mm, rect.width(), rect.height()), WRAP,
                       subfolder)
        else:  # column 4: reviewed
            confirmed = cell[0]
            p.setFont(flow.font(8, bold=True))
            p.setPen(QColor(GREEN if confirmed else ORANGE))
            p.drawText(rect, WRAP, "confirmed by a person" if confirmed else "NOT REVIEWED\n(model only)")

    rows = [[str(n), (picture, text.picture_note(picture)), (photo.path, photo.subfolder),
             text.probability(photo.p_crack), (photo.reviewed,), text.when(photo).replace(" ", "\n"),
             text.where(photo).replace(", ", "\n")]
            for n, (photo, picture) in enumerate(zip(data.findings, pictures), 1)]
    columns = [("#", 9), ("picture", PICTURE_MM[0] + 3), ("photo", 0), ("P(crack)", 15), ("reviewed", 25),
               ("captured", 20), ("GPS", 22)]

    def height(column, cell, width):
        if column == 4:
            return flow.text_height("NOT REVIEWED\n(model only)", flow.font(8, bold=True), width)
        return cell_height(column, cell, width)

    flow.table(columns, rows, 8, height, draw_cell)

"""The heatmap item in a real QGraphicsView: colours, toggle, opacity, hover, C / N labelling, context
menu and the stored tile labels round trip."""

from __future__ import annotations

import pytest
from PIL import Image

pytest.importorskip("pytestqt")
from PySide6.QtCore import QPointF, Qt  # noqa: E402
from PySide6.QtGui import QImage, QPixmap  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QGraphicsScene, QGraphicsView  # noqa: E402

from crackdesk.core.datasets import CRACK, NO_CRACK  # noqa: E402
from crackdesk.core.store import Workspace  # noqa: E402
from crackdesk.ui.heatmap_item import HeatmapControls, HeatmapItem, opacity_slider  # noqa: E402

# a 3 x 2 grid of 100 px tiles over a 300 x 200 grey photo; the middle top tile is a crack
TILES = [(0, 0, 100, 100, 0.05), (100, 0, 100, 100, 0.95), (200, 0, 100, 100, 0.2),
         (0, 100, 100, 100, 0.1), (100, 100, 100, 100, 0.3), (200, 100, 100, 100, 0.6)]


@pytest.fixture
def view(qtbot):
    scene = QGraphicsScene()
    photo = QImage(300, 200, QImage.Format_RGB32)
    photo.fill(0x808080)
    scene.addPixmap(QPixmap.fromImage(photo))
    item = HeatmapItem(TILES, threshold=0.5)
    scene.addItem(item)
    view = QGraphicsView(scene)
    view.setAlignment(Qt.AlignLeft | Qt.AlignTop)
    view.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    view.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    view.resize(320, 220)
    qtbot.addWidget(view)
    view.show()
    qtbot.waitExposed(view)
    view.item, view.scene_ = item, scene
    return view


def pixel(view, x, y):
    image = view.viewport().grab().toImage()
    point = view.mapFromScene(QPointF(x, y))
    c = image.pixelColor(point)
    return c.red(), c.green(), c.blue()


def test_colours_follow_probability_and_toggle_and_opacity(view, qtbot):
    crack, clean = pixel(view, 150, 50), pixel(view, 50, 150)
    assert crack[0] > 170 and crack[2] < 80  # red over the crack tile
    assert abs(clean[0] - clean[2]) < 60  # P 0.1: almost the grey photo
    view.item.set_heat_opacity(0.0)
    assert pixel(view, 150, 50) == pytest.approx((128, 128, 128), abs=3)
    slider = opacity_slider(view.item)
    slider.setValue(100)
    assert view.item.heat_opacity() == 1.0 and pixel(view, 150, 50)[2] < 20
    view.item.setVisible(False)
    assert pixel(view, 150, 50) == pytest.approx((128, 128, 128), abs=3)


def hover(view, qtbot, x, y):
    QTest.mouseMove(view.viewport(), view.mapFromScene(QPointF(x, y)))
    qtbot.waitUntil(lambda: view.item.hovered_tile() is not None and view.item.hovered_tile()[:2] ==
                    view.item.tiles[view.item.tile_at(QPointF(x, y))][:2], timeout=2000)


def test_hover_shows_the_tile_and_keys_label_it(view, qtbot):
    hover(view, qtbot, 150, 50)
    assert view.item.hovered_tile() == (100, 0, 100, 100, 0.95)
    assert "P(crack) 0.950" in view.item.toolTip() and view.item._tag.isVisible()
    got = []
    view.item.tile_label_requested.connect(lambda *args: got.append(args))
    QTest.keyClick(view.viewport(), Qt.Key_N)
    hover(view, qtbot, 250, 150)
    QTest.keyClick(view.viewport(), Qt.Key_C)
    QTest.keyClick(view.viewport(), Qt.Key_Delete)
    QTest.keyClick(view.viewport(), Qt.Key_X)  # not ours: ignored
    assert got == [(100, 0, 100, 100, NO_CRACK), (200, 100, 100, 100, CRACK), (200, 100, 100, 100, None)]


def test_context_menu_and_viewer_shortcut_fallback(view, qtbot):
    got = []
    view.item.tile_label_requested.connect(lambda *args: got.append(args))
    assert view.item.label_hovered_tile(CRACK) is False  # nothing hovered: the viewer labels the image
    menu = view.item.context_menu(view.item.tile_at(QPointF(30, 170)))
    labels = {a.data(): a for a in menu.actions() if not a.isSeparator()}
    labels[CRACK].trigger()
    labels[None].trigger()
    assert got == [(0, 100, 100, 100, CRACK), (0, 100, 100, 100, None)]


def test_stored_tile_labels_are_drawn(view, qtbot, tmp_path):
    folder = tmp_path / "site"
    folder.mkdir()
    Image.new("RGB", (300, 200), (128, 128, 128)).save(folder / "p.png")
    with Workspace(folder) as ws:
        image_id = ws.add_file("p.png")
        view.item.tile_label_requested.connect(lambda x, y, w, h, label: ws.set_tile_label(image_id, (x, y, w, h), label))
        menu = view.item.context_menu(0)
        menu.actions()[1].trigger()  # actions()[0] is the section title
        assert ws.tile_labels(image_id) == [(0, 0, 100, 100, CRACK)]
        view.item.set_tile_labels(ws.tile_labels(image_id))
    r, g, b = pixel(view, 2, 50)  # the dashed outline along the tile's left edge
    assert r > 180 and g < 120


def test_controls_own_the_item_per_photo(qtbot):
    scene = QGraphicsScene()
    photo = scene.addPixmap(QPixmap(300, 200))
    controls = HeatmapControls(photo)
    qtbot.addWidget(controls)
    got = []
    controls.tile_label_requested.connect(lambda *args: got.append(args))
    assert not controls.isEnabled() and controls.label_hovered_tile(CRACK) is False
    controls.show_tiles(TILES, 0.5, (300, 200), [(0, 0, 100, 100, NO_CRACK)])
    item = controls.item
    assert controls.isEnabled() and item.parentItem() is photo and item.scene() is scene
    controls.slider.setValue(20)
    controls.toggle.setChecked(False)
    assert item.heat_opacity() == pytest.approx(0.2) and not item.isVisible()
    menu = item.context_menu(1)
    menu.actions()[2].trigger()  # "no crack"
    assert got == [(100, 0, 100, 100, NO_CRACK)]
    controls.show_tiles(TILES[:2], 0.5, (200, 100))  # the next photo: a new item, same settings
    assert controls.item is not item and item.scene() is None
    assert controls.item.heat_opacity() == pytest.approx(0.2) and not controls.item.isVisible()
    controls.show_tiles([], 0.5)
    assert controls.item is None and not controls.isEnabled() and len(scene.items()) == 1

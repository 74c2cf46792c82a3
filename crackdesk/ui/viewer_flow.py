"""The viewer from the main window: opening it on the current photo, keeping it in step with the selection, its
heatmap of a large photo's stored tiles, and tile labels made in it (written by the workspace's writer)."""

from __future__ import annotations

from .futures import when_done


class ViewerFlow:
    """Mixed into MainWindow (uses its view, gallery model, workspace, model and actions)."""

    def open_viewer(self) -> None:
        if self.view.currentIndex().row() < 0:
            return
        if self.viewer is None:
            from .viewer import ViewerDialog

            self.viewer = ViewerDialog(self)
            self.viewer.navigate.connect(lambda step: self.select_row(self.view.currentIndex().row() + step))
            self.viewer.label_requested.connect(self.label_selection)
            self.viewer.tile_label_requested.connect(self.label_tile)
            self.viewer.addActions(self.actions.undo_redo)  # shortcuts of a window's actions work in that window
        self.viewer.show()
        self.viewer.raise_()
        self.refresh_viewer()

    def refresh_viewer(self) -> None:
        if self.viewer is None or not self.viewer.isVisible():
            return
        row = self.view.currentIndex().row()
        if row < 0 or self.folder is None:
            return
        k = self.model.image_index(row)
        image_id = int(self.model.ids[k])
        history = self.ws.history(image_id) if self.ws is not None and image_id >= 0 else []
        name = self.entry.key if self.entry else "no model"
        self.viewer.show_image(self.folder / self.model.paths[k], self.model.paths[k], self.model.label_at(row),
                               self.model.prob_at(row), self.model.threshold, name, history, self.model.band)
        self.viewer.show_meta(self.ws.photo_meta(image_id) if self.ws is not None and image_id >= 0 else None)
        self.show_viewer_heatmap(image_id)

    def show_viewer_heatmap(self, image_id: int) -> None:
        """Large photos classified by sliding window have stored tiles: show them over the photo."""
        digest = self.ws.hash_of(image_id) if self.ws is not None and image_id >= 0 else None
        tiles = self.ws.tile_results(digest, self.model_key) if digest and self.model_key else []
        if self.session is not None:  # as the grid's verdict has them, under the head it shows
            tiles = self.session.adapted_tiles(image_id, tiles, getattr(self, "site_state", None))
        self.viewer.show_heatmap(tiles, self.model.threshold, self.ws.tile_labels(image_id) if tiles else ())
        self._viewer_image_id = image_id

    def label_tile(self, x: int, y: int, w: int, h: int, label) -> None:
        """A tile correction from the viewer: stored at once, and used by retraining as a patch."""
        image_id = getattr(self, "_viewer_image_id", -1)
        if self.ws is None or image_id < 0:
            return
        ws = self.ws
        when_done(ws.submit_tile_label(image_id, (x, y, w, h), label),
                  lambda f: self._tile_labelled(ws, image_id, f))

    def _tile_labelled(self, ws, image_id: int, future) -> None:
        if future.exception() is not None:
            self.show_error("Label tile", str(future.exception()))
        if ws is self.ws and self.viewer is not None and self.viewer.heat.item is not None \
                and getattr(self, "_viewer_image_id", -1) == image_id:
            self.viewer.heat.item.set_tile_labels(ws.tile_labels(image_id))

import os

from crackdesk.core.scan import natural_key, scan_folder


def touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_lists_images_recursively_case_insensitively(tmp_path):
    for name in ["a.jpg", "b.JPEG", "c.Png", "d.bmp", "e.tif", "f.TIFF", "g.webp", "sub/deeper/h.jpg"]:
        touch(tmp_path / name)
    for name in ["notes.txt", "model.onnx", "jpg", ".hidden.jpg"]:
        touch(tmp_path / name)
    found = [f.relpath for f in scan_folder(tmp_path)]
    assert found == ["a.jpg", "b.JPEG", "c.Png", "d.bmp", "e.tif", "f.TIFF", "g.webp", "sub/deeper/h.jpg"]


def test_skips_hidden_and_app_folders(tmp_path):
    touch(tmp_path / "keep.jpg")
    touch(tmp_path / ".git" / "x.jpg")
    touch(tmp_path / ".crackdesk" / "thumb.jpg")
    touch(tmp_path / "__crackdesk_thumbs__" / "t.png")
    assert [f.relpath for f in scan_folder(tmp_path)] == ["keep.jpg"]


def test_natural_sort_order(tmp_path):
    for name in ["img10.jpg", "img2.jpg", "img1.jpg", "Img3.jpg", "a10/x.jpg", "a9/x.jpg"]:
        touch(tmp_path / name)
    assert [f.relpath for f in scan_folder(tmp_path)] == [
        "a9/x.jpg", "a10/x.jpg", "img1.jpg", "img2.jpg", "Img3.jpg", "img10.jpg"]
    assert sorted(["b2", "b10", "b1"], key=natural_key) == ["b1", "b2", "b10"]


def test_survives_symlink_loops_and_dangling_links(tmp_path):
    touch(tmp_path / "a" / "one.jpg")
    os.symlink(tmp_path, tmp_path / "a" / "loop")  # a/loop -> root: a cycle
    os.symlink(tmp_path / "missing.jpg", tmp_path / "dangling.jpg")
    found = [f.relpath for f in scan_folder(tmp_path)]
    assert found == ["a/one.jpg"]


def test_records_size_and_mtime(tmp_path):
    touch(tmp_path / "a.jpg", b"12345")
    (f,) = scan_folder(tmp_path)
    assert f.size == 5 and f.mtime_ns == (tmp_path / "a.jpg").stat().st_mtime_ns


def test_cancel_stops_early(tmp_path):
    import threading

    touch(tmp_path / "a.jpg")
    cancel = threading.Event()
    cancel.set()
    assert scan_folder(tmp_path, cancel=cancel) == []

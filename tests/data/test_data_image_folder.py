"""ImageFolder: class discovery, decoding, and corrupt files."""
import io

import numpy as np
import pytest
from PIL import Image

from minivgg.data import ImageFolder


def save(path, array, format=None):
    Image.fromarray(array).save(path, format=format)


@pytest.fixture
def folder_root(tmp_path):
    """root/dog (2 images) and root/cat (1 grey png), plus files that are not images."""
    rng = np.random.default_rng(0)
    for name in ("dog", "cat", ".hidden"):
        (tmp_path / name).mkdir()
    save(tmp_path / "dog" / "b.jpg", rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    save(tmp_path / "dog" / "a.PNG", rng.integers(0, 256, (10, 12, 3), dtype=np.uint8))
    save(tmp_path / "cat" / "c.png", np.full((8, 9), 77, np.uint8))
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    save(tmp_path / ".hidden" / "x.png", np.zeros((4, 4, 3), np.uint8))
    return tmp_path


def test_classes_sorted_and_samples_listed(folder_root):
    folder = ImageFolder(str(folder_root))
    assert folder.classes == ["cat", "dog"]
    assert folder.class_to_index == {"cat": 0, "dog": 1}
    assert [p.rsplit("/", 1)[1] for p, _ in folder.samples] == ["c.png", "a.PNG", "b.jpg"]
    assert folder.labels.tolist() == [0, 1, 1] and folder.labels.dtype == np.int64
    assert len(folder) == 3


def test_images_decode_to_rgb_hwc_and_chw(folder_root):
    folder = ImageFolder(str(folder_root))
    grey, label = folder[0]
    assert grey.shape == (8, 9, 3) and grey.dtype == np.uint8 and label == 0
    assert (grey == 77).all()
    png, _ = folder[1]
    original = np.asarray(Image.open(folder_root / "dog" / "a.PNG"))
    assert np.array_equal(png, original)
    chw = folder.images[1]
    assert chw.shape == (3, 10, 12) and np.array_equal(chw, original.transpose(2, 0, 1))
    assert len(folder.images) == 3


def test_corrupt_file_raises_naming_it(folder_root):
    bad = folder_root / "cat" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 definitely not a jpeg")
    folder = ImageFolder(str(folder_root))
    index = [p for p, _ in folder.samples].index(str(bad))
    with pytest.raises(ValueError, match="cannot decode .*broken.jpg"):
        folder[index]


def test_skip_corrupt_warns_and_drops_the_files(folder_root):
    (folder_root / "cat" / "broken.jpg").write_bytes(b"garbage")
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(buffer, format="JPEG")
    (folder_root / "dog" / "truncated.jpg").write_bytes(buffer.getvalue()[:300])
    with pytest.warns(UserWarning) as record:
        folder = ImageFolder(str(folder_root), skip_corrupt=True)
    messages = " ".join(str(w.message) for w in record)
    assert "broken.jpg" in messages and "truncated.jpg" in messages
    assert len(folder) == 3
    assert all("broken" not in p and "truncated" not in p for p, _ in folder.samples)


def test_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        ImageFolder(str(tmp_path / "nowhere"))


def test_empty_root(tmp_path):
    with pytest.raises(ValueError, match="no class sub-folders"):
        ImageFolder(str(tmp_path))


def test_class_folders_without_images(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "readme.txt").write_text("hi")
    with pytest.raises(ValueError, match="no readable .* images in the 1 class folders"):
        ImageFolder(str(tmp_path))

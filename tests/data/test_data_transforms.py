"""The paper's augmentation: shapes, scale jittering, crops, flips, colour shift, determinism."""
import numpy as np
import pytest

from minivgg.data import sample_rng
from minivgg.data import transforms as T


def random_image(channels=3, height=40, width=56, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (channels, height, width), dtype=np.uint8)


def test_rescale_keeps_aspect_ratio():
    assert T.rescale(random_image(3, 40, 60), 32).shape == (3, 32, 48)
    assert T.rescale(random_image(1, 90, 30), 60).shape == (1, 180, 60)
    image = random_image(3, 32, 40)
    assert T.rescale(image, 32) is image


def test_rescale_of_a_constant_image_is_constant():
    image = np.full((3, 20, 30), 200, np.uint8)
    assert (T.rescale(image, 47) == 200).all()


def test_hwc_input_is_refused_with_a_hint():
    with pytest.raises(ValueError, match="HWC"):
        T.rescale(np.zeros((32, 32, 3), np.uint8), 40)
    with pytest.raises(ValueError, match="expected a uint8 image"):
        T.rescale(np.zeros((3, 32, 32), np.float32), 40)


@pytest.mark.parametrize("channels", [1, 3])
def test_train_and_test_transform_shapes(channels):
    image = random_image(channels, 50, 70)
    mean = np.full(channels, 100.0)
    out = T.TrainTransform(32, (32, 48), mean=mean)(image, sample_rng(0, 0, 0))
    assert out.shape == (channels, 32, 32) and out.dtype == np.float32
    out = T.TestTransform(32, mean=mean)(image)
    assert out.shape == (channels, 32, 32) and out.dtype == np.float32


def test_test_transform_takes_the_central_square():
    image = random_image(3, 32, 48)
    out = T.TestTransform(32, mean=[1.0, 2.0, 3.0])(image)
    expected = image[:, :, 8:40].astype(np.float32) - np.array([1, 2, 3], np.float32)[:, None, None]
    assert np.array_equal(out, expected)


def test_scale_jitter_covers_the_closed_range():
    drawn = [T.draw_scale((256, 260), sample_rng(0, 0, i)) for i in range(500)]
    assert min(drawn) == 256 and max(drawn) == 260
    assert T.draw_scale(384, sample_rng(0, 0, 0)) == 384


def test_train_transform_rescales_to_the_drawn_scale(monkeypatch):
    sizes = []
    real_rescale = T.rescale

    def recording_rescale(image, size):
        sizes.append(size)
        return real_rescale(image, size)

    monkeypatch.setattr(T, "rescale", recording_rescale)
    transform = T.TrainTransform(16, (16, 20))
    for i in range(200):
        transform(random_image(3, 16, 16), sample_rng(1, 0, i))
    assert set(sizes) == {16, 17, 18, 19, 20}


def test_random_crop_is_a_window_of_the_image():
    image = random_image(3, 40, 56)
    crop = T.random_crop(image, 32, sample_rng(0, 0, 3))
    windows = [image[:, t:t + 32, l:l + 32] for t in range(9) for l in range(25)]
    assert any(np.array_equal(crop, w) for w in windows)
    with pytest.raises(ValueError, match="cannot crop 64x64 out of an image of 40x56"):
        T.random_crop(image, 64, sample_rng(0, 0, 0))


def test_flip_gives_the_image_or_its_mirror_both_often():
    image = random_image(3, 8, 8)
    flipped = 0
    for i in range(400):
        out = T.random_flip(image, sample_rng(0, 0, i))
        if np.array_equal(out, image[:, :, ::-1]):
            flipped += 1
        else:
            assert np.array_equal(out, image)
    assert 150 < flipped < 250


def test_train_transform_flip_equals_the_mirror():
    image = random_image(3, 32, 32)
    seen = set()
    for i in range(50):
        out = T.TrainTransform(32, 32)(image, sample_rng(0, 0, i))
        if np.array_equal(out, image[:, :, ::-1]):
            seen.add("mirror")
        else:
            assert np.array_equal(out, image)
            seen.add("same")
        assert np.array_equal(T.TrainTransform(32, 32, flip=False)(image, sample_rng(0, 0, i)), image)
    assert seen == {"mirror", "same"}


def correlated_images(n=64, seed=0):
    """RGB images whose pixels have a known, strongly correlated colour distribution."""
    rng = np.random.default_rng(seed)
    base = rng.normal(120, 40, (n, 1, 16, 16))
    noise = rng.normal(0, [[[10]], [[5]], [[2]]], (n, 3, 16, 16))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def test_compute_mean_and_pca():
    images = correlated_images()
    assert np.allclose(T.compute_mean(images), images.mean(axis=(0, 2, 3)), rtol=1e-5)
    eigvals, eigvecs = T.compute_pca(images)
    pixels = images.transpose(1, 0, 2, 3).reshape(3, -1) / 255.0
    reference = np.linalg.eigvalsh(np.cov(pixels, bias=True))[::-1]
    assert np.allclose(eigvals, reference, rtol=1e-6)
    assert eigvals[0] > eigvals[1] > eigvals[2] > 0
    assert np.allclose(eigvecs.T @ eigvecs, np.eye(3), atol=1e-10)
    assert abs(abs(eigvecs[:, 0] @ np.ones(3)) / np.sqrt(3) - 1) < 0.01  # the grey axis leads


def test_statistics_accept_sequences_of_different_sizes():
    images = [random_image(3, 10, 12, seed=1), random_image(3, 20, 7, seed=2)]
    pixels = np.concatenate([im.reshape(3, -1) for im in images], axis=1)
    assert np.allclose(T.compute_mean(images), pixels.mean(axis=1), rtol=1e-5)
    eigvals, _ = T.compute_pca(images)
    assert np.allclose(eigvals, np.linalg.eigvalsh(np.cov(pixels / 255.0, bias=True))[::-1])


def test_pca_of_grey_images_is_none():
    assert T.compute_pca(random_image(1, 8, 8)[None]) is None


def test_colour_shift_statistics_follow_the_pca():
    eigvals, eigvecs = T.compute_pca(correlated_images())
    image = np.full((3, 2, 2), 128.0, np.float32)
    shifts = []
    for i in range(4000):
        out = T.colour_shift(image, sample_rng(0, 0, i), eigvals, eigvecs)
        assert np.allclose(out, out[:, :1, :1])  # one shift for every pixel
        shifts.append(out[:, 0, 0].astype(np.float64) - 128.0)
    shifts = np.array(shifts)
    expected = 255.0**2 * 0.1**2 * eigvecs @ np.diag(eigvals**2) @ eigvecs.T
    standard_error = np.sqrt(np.diag(expected) / len(shifts))
    assert (np.abs(shifts.mean(axis=0)) < 4 * standard_error).all()
    covariance = np.cov(shifts.T, bias=True)
    assert np.linalg.norm(covariance - expected) < 0.1 * np.linalg.norm(expected)
    coefficients = shifts @ eigvecs / (255.0 * eigvals)  # the drawn alphas
    assert np.allclose(coefficients.std(axis=0), 0.1, rtol=0.1)


def test_colour_shift_needs_a_float_image_with_matching_channels():
    eigvals, eigvecs = T.compute_pca(correlated_images(4))
    with pytest.raises(ValueError, match="expected a float image"):
        T.colour_shift(np.zeros((3, 4, 4), np.uint8), sample_rng(0, 0, 0), eigvals, eigvecs)
    with pytest.raises(ValueError, match="3 components but the image has 1 channels"):
        T.colour_shift(np.zeros((1, 4, 4), np.float32), sample_rng(0, 0, 0), eigvals, eigvecs)


def test_same_seed_same_output_different_index_different_crop():
    images = correlated_images(8)
    transform = T.TrainTransform(12, (12, 20), pca=T.compute_pca(images), mean=T.compute_mean(images))
    first = transform(images[0], sample_rng(7, 2, 5))
    assert np.array_equal(first, transform(images[0], sample_rng(7, 2, 5)))
    others = [transform(images[0], sample_rng(7, 2, i)) for i in range(10)]
    assert sum(not np.array_equal(first, o) for o in others) >= 8
    assert not np.array_equal(first, transform(images[0], sample_rng(7, 3, 5)))


def test_crop_position_depends_on_the_sample_index():
    image = random_image(1, 64, 64)
    crops = {T.random_crop(image, 32, sample_rng(0, 0, i)).tobytes() for i in range(10)}
    assert len(crops) > 1


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError, match="train_size <= S_min <= S_max"):
        T.TrainTransform(224, (200, 300))
    with pytest.raises(ValueError, match="scale must be an int S or a pair of ints"):
        T.TrainTransform(32, 256.0)
    with pytest.raises(ValueError, match="scale must be an int S or a pair of ints"):
        T.TrainTransform(32, (32, 40, 48))
    with pytest.raises(ValueError, match="pca should be"):
        T.TrainTransform(32, 32, pca=(np.ones(2), np.eye(2)))
    with pytest.raises(ValueError, match="mean has shape"):
        T.TestTransform(8, mean=[1.0, 2.0, 3.0])(random_image(1, 8, 8))

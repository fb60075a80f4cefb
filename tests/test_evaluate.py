"""The paper's test protocol: dense evaluation, multi-crop, multi-scale, flips, fusion, top-k error."""
import numpy as np
import pytest

from minivgg import Tensor, data, models, no_grad
from minivgg.evaluate import (METHODS, check_fusable, crop_positions, dense_posteriors, fuse, grid_offsets,
                              multicrop_posteriors, posteriors, protocol_scales, rescale_batch)
from minivgg.kernels.loss import softmax
from minivgg.metrics import top_k_error


@pytest.fixture(scope="module")
def net():
    return models.vgg("A", num_classes=7, in_channels=3, input_size=32, width=0.125, init="glorot",
                      seed=1, dtype=np.float64).eval()


def images(n, size=32, channels=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, channels, size, size), dtype=np.uint8)


def plain_posteriors(model, batch):
    with no_grad():
        return softmax(model(Tensor(batch)).data)


def test_dense_at_the_training_size_equals_the_plain_forward(net):
    x = images(3)
    mean = np.array([120.0, 110.0, 100.0])
    expected = plain_posteriors(net, rescale_batch(x, 32, mean).astype(np.float64))
    got = dense_posteriors(net, x, 32, mean, flip=False)
    assert np.abs(got - expected).max() / np.abs(expected).max() <= 1e-5


@pytest.mark.parametrize("q", [32, 64, 96, 100])
def test_class_score_map_size_follows_q(net, q):
    dense = net.to_dense()
    with no_grad():
        scores = dense(Tensor(np.zeros((1, 3, q, q)))).data
    side = (q - 32) // 32 + 1
    assert scores.shape == (1, 7, side, side)


def test_crop_grid_positions_cover_the_image_evenly():
    assert crop_positions(32, 32, 5) == [0, 0, 0, 0, 0]
    assert crop_positions(48, 32, 5) == [0, 4, 8, 12, 16]
    assert crop_positions(40, 32, 3) == [0, 4, 8]
    assert crop_positions(40, 32, 1) == [4]


def test_multicrop_averages_the_crops_it_says(net):
    x = images(2, size=40)
    got = multicrop_posteriors(net, x, 40, grid=2, flip=False)
    batch = rescale_batch(x, 40, None).astype(np.float64)
    crops = [batch[:, :, t:t + 32, l:l + 32] for t in (0, 8) for l in (0, 8)]
    expected = np.mean([plain_posteriors(net, np.ascontiguousarray(c)) for c in crops], axis=0)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_a_crop_the_grid_repeats_runs_once_and_counts_as_often_as_it_occurs(net):
    assert crop_positions(34, 32, 5) == [0, 0, 1, 2, 2]
    assert grid_offsets(34, 34, 32, 5)[(0, 2)] == 4 and len(grid_offsets(34, 34, 32, 5)) == 9
    assert grid_offsets(32, 32, 32, 5) == {(0, 0): 25}
    x = images(2, size=34)
    batch = rescale_batch(x, 34, None).astype(np.float64)
    crops = [batch[:, :, t:t + 32, l:l + 32] for t in crop_positions(34, 32, 5) for l in crop_positions(34, 32, 5)]
    expected = np.mean([plain_posteriors(net, np.ascontiguousarray(c)) for c in crops], axis=0)
    np.testing.assert_allclose(multicrop_posteriors(net, x, 34, grid=5, flip=False), expected, rtol=1e-6)


def test_the_flip_of_a_mirror_symmetric_image_gives_the_same_posteriors(net):
    half = images(2, size=40, seed=3)[:, :, :, :20]
    symmetric = np.concatenate([half, half[:, :, :, ::-1]], axis=3)
    with_flip = dense_posteriors(net, symmetric, 40, flip=True)
    without = dense_posteriors(net, symmetric, 40, flip=False)
    np.testing.assert_allclose(with_flip, without, rtol=1e-9)
    np.testing.assert_allclose(multicrop_posteriors(net, symmetric, 40, grid=3, flip=True),
                               multicrop_posteriors(net, symmetric, 40, grid=3, flip=False), rtol=1e-9)


def test_multi_scale_is_the_mean_over_scales(net):
    x = images(2)
    both = posteriors(net, x, "dense", [32, 48])
    each = [posteriors(net, x, "dense", [q]) for q in (32, 48)]
    np.testing.assert_allclose(both, np.mean(each, axis=0), rtol=1e-12)
    combined = posteriors(net, x, "dense+multi-crop", [40], grid=2)
    np.testing.assert_allclose(combined, (posteriors(net, x, "dense", [40]) +
                                          posteriors(net, x, "multi-crop", [40], grid=2)) / 2, rtol=1e-12)
    np.testing.assert_allclose(both.sum(axis=1), 1.0)


def mixed_sizes(seed=0):
    """Five images of three sizes and two orientations, as an image folder gives them."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (3, h, w), dtype=np.uint8) for h, w in [(40, 56), (48, 40), (40, 56), (33, 32),
                                                                         (48, 40)]]


@pytest.mark.parametrize("method", METHODS)
def test_images_of_different_sizes_give_what_each_gives_alone(net, method):
    pictures, mean, std = mixed_sizes(), np.array([120.0, 110.0, 100.0]), np.array([60.0, 50.0, 40.0])
    together = posteriors(net, pictures, method, [36, 40], mean, grid=2, std=std, batch_size=4)
    alone = np.concatenate([posteriors(net, [p], method, [36, 40], mean, grid=2, std=std) for p in pictures])
    np.testing.assert_allclose(together, alone, rtol=1e-10)


def test_mean_and_std_normalise_the_input_as_torchvision_does(net):
    x = images(2, size=40)
    mean, std = data.torchvision_normalisation()
    got = multicrop_posteriors(net, x, 40, mean, grid=1, flip=False, std=std)
    central = x[:, :, 4:36, 4:36].astype(np.float64) / 255
    normalised = (central - np.reshape(data.IMAGENET_MEAN, (1, 3, 1, 1))) / np.reshape(data.IMAGENET_STD, (1, 3, 1, 1))
    np.testing.assert_allclose(got, plain_posteriors(net, normalised), rtol=1e-5)


def test_posteriors_report_progress_and_read_any_sequence_of_images(net):
    done = []
    p = posteriors(net, mixed_sizes(), "single", [40], batch_size=2, progress=done.append)
    assert done == [2, 2, 1] and p.shape == (5, 7)


def test_protocol_scales_follow_the_papers_rule():
    assert protocol_scales("256", 224) == (256, [224, 256, 288])  # d = 32 at a 224 crop
    assert protocol_scales("32", 32) == (32, [32, 36])  # d = 4; Q = 28 is below the crop and dropped
    assert protocol_scales("256,512", 224) == (384, [256, 384, 512])
    assert protocol_scales(40, 32, step=8) == (40, [32, 40, 48])


def test_fusion_of_a_model_with_itself_equals_the_model(net):
    p = posteriors(net, images(3), "multi-crop", [36], grid=2)
    np.testing.assert_array_equal(fuse([p, p]), p)


def test_top_k_error():
    scores = np.array([[0.1, 0.9, 0.0, 0.0, 0.0, 0.0], [0.9, 0.1, 0.5, 0.4, 0.3, 0.2]])
    assert top_k_error(scores, np.array([1, 1]), 1) == 0.5
    assert top_k_error(scores, np.array([1, 1]), 5) == 0.5  # sample 2 ranks class 1 last
    assert top_k_error(scores, np.array([1, 2]), 5) == 0.0


def test_bad_input_gives_clear_errors(net):
    with pytest.raises(ValueError, match="test scale Q must be an integer >= the training size 32, got 24"):
        dense_posteriors(net, images(1), 24)
    with pytest.raises(ValueError, match="at least one test scale"):
        posteriors(net, images(1), "dense", [])
    with pytest.raises(ValueError, match="unknown method 'crops'"):
        posteriors(net, images(1), "crops", [32])
    other = models.vgg("A", num_classes=5, in_channels=3, input_size=32, width=0.125)
    with pytest.raises(ValueError, match=r"different class counts \[5, 7\]"):
        check_fusable([net, other])
    with pytest.raises(ValueError, match="posteriors of one shape"):
        fuse([np.zeros((2, 7)), np.zeros((2, 5))])

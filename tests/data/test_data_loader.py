"""DataLoader: determinism, coverage, batch-size independence, the prefetch thread; subsets."""
import gc
import threading

import numpy as np
import pytest

from minivgg.data import DataLoader, TrainTransform, random_subset, train_val_split


def dataset(n=23, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 3, 12, 12), dtype=np.uint8)
    return images, rng.integers(0, 10, n)


def epoch_batches(loader, epoch=0):
    loader.set_epoch(epoch)
    return list(loader)


def prefetch_threads():
    return [t for t in threading.enumerate() if t.name == "minivgg-data-prefetch"]


def test_same_seed_same_batches_and_epochs_change_the_order():
    images, labels = dataset()
    make = lambda: DataLoader(images, labels, 5, transform=TrainTransform(8, (8, 12)), seed=3)
    a, b = epoch_batches(make()), epoch_batches(make())
    for (xa, ya, ia), (xb, yb, ib) in zip(a, b, strict=True):
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb) and np.array_equal(ia, ib)
    loader = make()
    order0 = np.concatenate([i for _, _, i in epoch_batches(loader, 0)])
    order1 = np.concatenate([i for _, _, i in epoch_batches(loader, 1)])
    assert not np.array_equal(order0, order1)
    assert np.array_equal(order0, np.concatenate([i for _, _, i in epoch_batches(loader, 0)]))


def test_every_sample_once_per_epoch_with_matching_labels_and_pixels():
    images, labels = dataset()
    loader = DataLoader(images, labels, 5, seed=1)
    batches = epoch_batches(loader, 4)
    indices = np.concatenate([i for _, _, i in batches])
    assert np.array_equal(np.sort(indices), np.arange(len(labels)))
    for x, y, i in batches:
        assert x.dtype == np.float32 and y.dtype == np.int64 and i.dtype == np.int64
        assert np.array_equal(x, images[i].astype(np.float32))  # 0..255, not divided
        assert np.array_equal(y, labels[i])


def test_length_and_last_batch():
    images, labels = dataset(23)
    assert len(DataLoader(images, labels, 5)) == 5
    assert [len(y) for _, y, _ in DataLoader(images, labels, 5)] == [5, 5, 5, 5, 3]
    loader = DataLoader(images, labels, 5, drop_last=True)
    assert len(loader) == 4 and [len(y) for _, y, _ in loader] == [5, 5, 5, 5]
    assert len(DataLoader(images[:20], labels[:20], 5)) == 4


def test_no_shuffle_keeps_dataset_order():
    images, labels = dataset()
    indices = np.concatenate([i for _, _, i in DataLoader(images, labels, 4, shuffle=False)])
    assert np.array_equal(indices, np.arange(len(labels)))


def test_augmentation_does_not_depend_on_batching_or_threads():
    images, labels = dataset()
    transform = TrainTransform(8, (8, 12))

    def per_sample(batch_size, prefetch):
        loader = DataLoader(images, labels, batch_size, transform=transform, seed=9, prefetch=prefetch)
        loader.set_epoch(2)
        return {int(i): x for xb, _, ib in loader for x, i in zip(xb, ib)}

    reference = per_sample(4, True)
    for batch_size, prefetch in [(7, True), (23, False), (1, False)]:
        other = per_sample(batch_size, prefetch)
        assert all(np.array_equal(reference[i], other[i]) for i in reference)


def test_a_rank_gets_the_inputs_of_its_part_of_each_batch_and_the_whole_batch_labels():
    images, labels = dataset()
    loader = DataLoader(images, labels, 7, transform=TrainTransform(8, (8, 12)), seed=9)
    loader.set_epoch(1)
    whole = list(loader)
    part = list(loader.iterate(part=lambda length: (length // 2, length)))   # the second half of each batch
    assert len(part) == len(whole) == 4
    for (x, y, i), (x_part, y_part, i_part) in zip(whole, part):
        assert np.array_equal(x_part, x[len(y) // 2:]), "the same augmentation as in the whole batch"
        assert np.array_equal(y_part, y) and np.array_equal(i_part, i)


def test_worker_exception_reaches_the_consumer():
    images, labels = dataset()
    images = list(images)

    def failing(image, rng):
        if image is images[6]:
            raise RuntimeError("bad sample 6")
        return image.astype(np.float32)

    loader = DataLoader(images, labels, 4, transform=failing, shuffle=False)
    with pytest.raises(RuntimeError, match="bad sample 6"):
        list(loader)
    assert not prefetch_threads()


def test_abandoned_iteration_stops_the_worker():
    images, labels = dataset(200)
    loader = DataLoader(images, labels, 2)
    for _ in loader:
        break
    gc.collect()
    assert not prefetch_threads()
    iterator = iter(loader)
    next(iterator)
    iterator.close()
    assert not prefetch_threads()


def test_sequences_of_images_need_one_size():
    images = [np.zeros((3, 8, 8), np.uint8), np.zeros((3, 9, 8), np.uint8)]
    loader = DataLoader(images, [0, 1], 2, prefetch=False)
    with pytest.raises(ValueError, match="different shapes .* pass a transform"):
        list(loader)
    loader = DataLoader(images, [0, 1], 2, transform=TrainTransform(8, 8))
    (x, _, _), = list(loader)
    assert x.shape == (2, 3, 8, 8)


def test_invalid_arguments():
    images, labels = dataset()
    with pytest.raises(ValueError, match="23 images but 22 labels"):
        DataLoader(images, labels[:-1], 4)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        DataLoader(images, labels, 0)
    with pytest.raises(ValueError, match=r"seed must be an int in \[0, 2\*\*32\)"):
        DataLoader(images, labels, 4, seed=-1)
    with pytest.raises(ValueError, match="1-D integer array"):
        DataLoader(images, labels.astype(float), 4)


def test_random_subset_is_fixed_by_its_seed():
    images, labels = dataset(50)
    sub_images, sub_labels = random_subset(images, labels, 10, seed=4)
    again, _ = random_subset(images, labels, 10, seed=4)
    other, _ = random_subset(images, labels, 10, seed=5)
    assert sub_images.shape == (10, 3, 12, 12) and np.array_equal(sub_images, again)
    assert not np.array_equal(sub_images, other)
    rows = [next(j for j in range(50) if np.array_equal(images[j], im)) for im in sub_images]
    assert rows == sorted(rows) and np.array_equal(sub_labels, labels[rows])
    with pytest.raises(ValueError, match="size must be in 1..50, got 51"):
        random_subset(images, labels, 51)


def test_random_subset_of_a_sequence_is_a_view():
    images, labels = dataset(12)
    view, sub_labels = random_subset(list(images), labels, 5, seed=1)
    array, _ = random_subset(images, labels, 5, seed=1)
    assert len(view) == 5 and all(np.array_equal(view[k], array[k]) for k in range(5))


def test_train_val_split_is_disjoint_complete_and_seeded():
    images, labels = dataset(40)
    images[:, 0, 0, 0] = np.arange(40)  # tag each image with its index
    (train_x, train_y), (val_x, val_y) = train_val_split(images, labels, 8, seed=2)
    train_ids, val_ids = train_x[:, 0, 0, 0], val_x[:, 0, 0, 0]
    assert len(val_ids) == 8 and len(train_ids) == 32
    assert np.array_equal(np.sort(np.concatenate([train_ids, val_ids])), np.arange(40))
    assert np.array_equal(train_y, labels[train_ids]) and np.array_equal(val_y, labels[val_ids])
    (_, _), (again, _) = train_val_split(images, labels, 8, seed=2)
    assert np.array_equal(again, val_x)
    with pytest.raises(ValueError, match="val_size must be in 1..39, got 40"):
        train_val_split(images, labels, 40)

"""`load("tfds:NAME")`: TFDS-prepared Omniglot, CIFAR-FS, FC100, CUB, offline.

The TFDS datasets are faked with `tfds.testing.mock_data` (tests/data/tfds_fakes.py):
class-balanced examples we supply, served through TFDS's own serialisation.
Nothing downloads.
"""

import io
import json
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from mgaug_tf.data import CorruptDataError, DataNotFoundError, episode_dataset, load
from mgaug_tf.data import cifar, omniglot
from mgaug_tf.data.cub import cub_split_rule
from tests.conftest import shared_data_dir
from tests.data.conftest import decode_ids
from tests.data.tfds_fakes import mock_prepared, png
from tests.data.writers import encode, random_images, write_omniglot, write_python2_pickle

SPLITS = ("train", "val", "test")


def _one_bit_png(image):
    buffer = io.BytesIO()
    Image.fromarray(image).convert("1").save(buffer, "PNG")
    return buffer.getvalue()


def _strokes(seed, size=105):
    """A 105x105 0/255 image, black strokes (0) on white (255), like Omniglot's PNGs."""
    rng = np.random.default_rng(seed)
    image = np.full((size, size), 255, np.uint8)
    for _ in range(3):
        row, col = rng.integers(10, size - 30, 2)
        image[row:row + rng.integers(5, 25), col:col + rng.integers(3, 20)] = 0
    return image


# --- Omniglot


def _omniglot_structure():
    """`{set: {alphabet: number of characters}}`: the real one when ../shared/data has it."""
    shared = shared_data_dir()
    zips = {name: shared / "omniglot" / f"images_{name}.zip" for name in omniglot.SETS} \
        if shared else {}
    if zips and all(path.is_file() for path in zips.values()):
        structure = {}
        for set_name, path in zips.items():
            with zipfile.ZipFile(path) as archive:
                pairs = {tuple(name.split("/")[-3:-1]) for name in archive.namelist()
                         if name.endswith(".png")}
            structure[set_name] = {}
            for alphabet, _ in pairs:
                structure[set_name][alphabet] = structure[set_name].get(alphabet, 0) + 1
        return structure, True
    # The published sizes: 5 val alphabets (172 characters) among 30
    # background alphabets (964), 20 evaluation alphabets (659).
    val = {"Armenian": 41, "Bengali": 46, "Early_Aramaic": 22, "Hebrew": 22,
           "Mkhedruli_(Georgian)": 41}
    background = dict(val, **{f"Background_{i:02d}": 31 + (i < 17) for i in range(25)})
    evaluation = {f"Evaluation_{i:02d}": 32 + (i < 19) for i in range(20)}
    assert sum(background.values()) == 964 and sum(evaluation.values()) == 659
    return {"background": background, "evaluation": evaluation}, False


def _omniglot_examples(structure, images_per_character, image_of):
    """TFDS omniglot examples: split `train` = background, `test` = evaluation."""
    alphabets = sorted(a for alphabets in structure.values() for a in alphabets)
    alphabets += [f"Unused_{i:02d}" for i in range(50 - len(alphabets))]  # TFDS has 50
    examples, label = {"train": [], "test": []}, 0
    for set_name, tfds_split in (("background", "train"), ("evaluation", "test")):
        for alphabet in sorted(structure[set_name]):
            for char_id in range(structure[set_name][alphabet]):
                for drawing in range(images_per_character):
                    examples[tfds_split].append({
                        "image": image_of(set_name, alphabet, char_id, drawing),
                        "alphabet": alphabets.index(alphabet), "alphabet_char_id": char_id,
                        "label": label})
                label += 1
    return examples, {"alphabet": alphabets}


def test_omniglot_vinyals_class_counts_and_episodes(tmp_path):
    structure, real = _omniglot_structure()
    blank = _one_bit_png(_strokes(0))
    examples, names = _omniglot_examples(structure, 2, lambda *_: blank)
    with mock_prepared("omniglot", tmp_path, examples, names):
        splits = {split: load("tfds:omniglot", tmp_path, split) for split in SPLITS}
        background = load("tfds:omniglot", tmp_path, "train",
                          split_scheme="background_evaluation")
    # 1028 / 172 / 423 characters, each at 4 rotations.
    assert [splits[s].num_classes for s in SPLITS] == [4 * 1028, 4 * 172, 4 * 423]
    assert background.num_classes == 964
    assert splits["val"].dataset == "omniglot" and splits["val"].image_shape == (28, 28, 1)
    assert set(splits["train"].class_sizes) == {2}
    if real:
        lists = shared_data_dir() / "splits" / "omniglot_vinyals_ren"
        for split in SPLITS:
            published = sorted((lists / f"{split}.txt").read_text().split())
            assert sorted({name.rsplit("/", 1)[0] for name in splits[split].class_names}) \
                == published
    (support, support_labels, query), query_labels = next(iter(episode_dataset(
        splits["test"], n_way=5, k_shot=1, k_query=1, meta_batch_size=2, seed=3)))
    assert support.shape == (2, 5, 28, 28, 1) and query.shape == (2, 5, 28, 28, 1)
    assert support_labels.numpy().tolist() == [[0, 1, 2, 3, 4]] * 2


@pytest.mark.parametrize("tfds_encoding", ["original 1-bit PNG", "RGB PNG"])
def test_omniglot_pixels_equal_the_raw_reader(tmp_path, tfds_encoding):
    # TFDS stores Omniglot's original PNG files (its feature says 105x105x3);
    # an RGB re-encoding of the same pixels must give the same 28 px grey
    # inverted images too.
    structure = {"background": {"Alpha": 2, "Beta": 1}, "evaluation": {"Gamma": 2}}
    strokes, seeds = {}, iter(range(100))
    (tmp_path / "raw").mkdir()
    for set_name, alphabets in structure.items():
        written = write_omniglot(
            tmp_path / "raw" / f"images_{set_name}.zip",
            {alphabet: [[_strokes(next(seeds)) for _ in range(3)] for _ in range(count)]
             for alphabet, count in alphabets.items()},
            as_zip=True, set_name=set_name)
        strokes.update(written)

    def image_of(set_name, alphabet, char_id, drawing):
        image = strokes[(alphabet, f"character{char_id + 1:02d}")][drawing]
        if tfds_encoding == "RGB PNG":
            return png(np.repeat(image[..., None], 3, axis=-1))
        return _one_bit_png(image)

    examples, names = _omniglot_examples(structure, 3, image_of)
    for split in ("train", "test"):
        raw = load("omniglot", tmp_path / "raw", split, split_scheme="background_evaluation",
                   rotations=[0, 90])
        with mock_prepared("omniglot", tmp_path / "tfds", examples, names):
            prepared = load("tfds:omniglot", tmp_path / "tfds", split,
                            split_scheme="background_evaluation", rotations=[0, 90])
        assert prepared.class_names == raw.class_names
        assert prepared.category_names == raw.category_names
        for index in range(raw.num_classes):
            # Same images; the order within a class is TFDS's record order.
            assert sorted(map(bytes, prepared.images(index))) == \
                sorted(map(bytes, raw.images(index)))
        image = prepared.images(0)[0]
        assert image.shape == (28, 28, 1) and image.dtype == np.uint8
        assert image.min() == 0 and image.max() > 200  # inverted: white strokes on black


def test_omniglot_without_alphabet_names_is_refused(tmp_path):
    examples, _ = _omniglot_examples({"background": {"A": 1}, "evaluation": {"B": 1}}, 1,
                                     lambda *_: _one_bit_png(_strokes(1)))
    with mock_prepared("omniglot", tmp_path, examples):
        with pytest.raises(CorruptDataError, match="alphabet names"):
            load("tfds:omniglot", tmp_path, "train", split_scheme="background_evaluation")


# --- CIFAR-FS and FC100


def _cifar_examples(train_per_class=4, test_per_class=2):
    """Identifiable CIFAR-100 examples: pixel R = fine label, G = index in class, B = 7."""
    examples = {"train": [], "test": []}
    for tfds_split, count, first in (("train", train_per_class, 0),
                                     ("test", test_per_class, train_per_class)):
        for index in range(count):
            for label, name in enumerate(cifar.FINE_NAMES):
                image = np.broadcast_to(np.array([label, first + index, 7], np.uint8),
                                        (32, 32, 3))
                examples[tfds_split].append({
                    "id": f"{tfds_split}_{len(examples[tfds_split]):05d}", "image": png(image),
                    "label": label, "coarse_label": cifar.SUPERCLASS_OF[name]})
    return examples


CIFAR_NAMES = {"label": cifar.FINE_NAMES, "coarse_label": cifar.SUPERCLASS_NAMES}


@pytest.mark.parametrize("dataset,sizes", [("cifar_fs", (64, 16, 20)), ("fc100", (60, 20, 20))])
def test_cifar_class_splits_counts_and_episodes(tmp_path, dataset, sizes):
    with mock_prepared("cifar100", tmp_path, _cifar_examples(), CIFAR_NAMES):
        splits = {split: load(f"tfds:{dataset}", tmp_path, split) for split in SPLITS}
    assert tuple(splits[s].num_classes for s in SPLITS) == sizes
    names = [set(splits[s].class_names) for s in SPLITS]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])
    assert set().union(*names) == set(cifar.FINE_NAMES)
    shared = shared_data_dir()
    if shared:
        lists = shared / "splits" / f"{dataset}_torchmeta"
        for split, split_names in zip(SPLITS, names):
            published = json.loads((lists / f"{split}.json").read_text())
            if dataset == "cifar_fs":
                assert split_names == {fine for _, fine in published}
            else:
                assert split_names == {fine for superclass in published
                                       for fine in cifar.CIFAR100_SUPERCLASSES[superclass]}
    val = splits["val"]
    assert val.dataset == dataset and val.image_shape == (32, 32, 3)
    # All 600 (here 6) images of a class, CIFAR-100's train images first.
    assert set(val.class_sizes) == {6}
    fine = cifar.FINE_NAMES.index(val.class_names[0])
    ids = val.images(0)[:, 0, 0, :2]
    assert ids.tolist() == [[fine, index] for index in range(6)]
    assert [val.category_names[c] for c in val.category_labels] == \
        [next(s for s, fines in cifar.CIFAR100_SUPERCLASSES.items() if name in fines)
         for name in val.class_names]
    # Episodes: n_way distinct classes of the split, support and query disjoint.
    (support, support_labels, query), query_labels = next(iter(episode_dataset(
        val, n_way=5, k_shot=2, k_query=3, meta_batch_size=2, augment=False, seed=1)))
    support_ids, query_ids = decode_ids(support), decode_ids(query)
    split_fines = {cifar.FINE_NAMES.index(name) for name in val.class_names}
    for task in range(2):
        classes = support_ids[task, :, 0].reshape(5, 2)
        assert (classes == classes[:, :1]).all() and len(set(classes[:, 0])) == 5
        assert set(classes[:, 0]) <= split_fines
        assert (query_ids[task, :, 0].reshape(5, 3) == classes[:, :1]).all()
        assert not {tuple(i) for i in support_ids[task]} & {tuple(i) for i in query_ids[task]}


def test_cifar_pixels_equal_the_pickle_reader(tmp_path):
    examples = {"train": [], "test": []}
    images = random_images(100 * 3, 32, seed=4)
    for position, image in enumerate(images):
        label = position % 100
        tfds_split = "train" if position < 200 else "test"
        examples[tfds_split].append({
            "id": f"{tfds_split}_{len(examples[tfds_split]):05d}", "image": png(image),
            "label": label, "coarse_label": cifar.SUPERCLASS_OF[cifar.FINE_NAMES[label]]})
    val_fines = [cifar.FINE_NAMES.index(n) for n in cifar.split_classes("cifar_fs", "val")]
    keep = np.isin(np.arange(300) % 100, val_fines)
    write_python2_pickle({b"data": images[keep], b"labels": list(np.arange(300)[keep] % 100)},
                         tmp_path / "CIFAR_FS_val.pickle")
    raw = load("cifar_fs", tmp_path, "val")
    with mock_prepared("cifar100", tmp_path / "tfds", examples, CIFAR_NAMES):
        prepared = load("tfds:cifar_fs", tmp_path / "tfds", "val")
    assert prepared.class_names == raw.class_names
    for index in range(raw.num_classes):
        np.testing.assert_array_equal(prepared.images(index), raw.images(index))


def test_cifar_with_other_label_names_is_refused(tmp_path):
    names = dict(CIFAR_NAMES, label=[f"thing{i}" for i in range(100)])
    with mock_prepared("cifar100", tmp_path, _cifar_examples(1, 1), names):
        with pytest.raises(CorruptDataError, match="label names"):
            load("tfds:fc100", tmp_path, "train")


# --- CUB


def _cub_classes():
    shared = shared_data_dir()
    lists = shared / "splits" / "cub_torchmeta" if shared else None
    if lists and lists.is_dir():
        return sorted(name for split in SPLITS
                      for name in json.loads((lists / f"{split}.json").read_text())), True
    return [f"{i:03d}.Species_{i}" for i in range(1, 201)], False


def test_cub_class_counts_pixels_and_episodes(tmp_path):
    classes, real = _cub_classes()
    raw_root = tmp_path / "raw" / "CUB_200_2011" / "images"
    mask = png(np.zeros((8, 8, 1), np.uint8))
    examples = {"train": [], "test": []}
    images = random_images(len(classes) * 3, 24, seed=5)
    for label, folder in enumerate(classes):
        (raw_root / folder).mkdir(parents=True)
        for number in range(3):
            jpeg = encode(images[label * 3 + number], "JPEG", quality=90)
            file_name = f"{folder[4:]}_{number:04d}.jpg"
            (raw_root / folder / file_name).write_bytes(jpeg)
            examples["train" if number < 2 else "test"].append({
                "image": jpeg, "image/filename": f"CUB_200_2011/images/{folder}/{file_name}",
                "label": label, "label_name": folder[4:].lower(),
                "bbox": tfds.features.BBox(0.0, 0.0, 1.0, 1.0),
                "segmentation_mask": mask})
    with mock_prepared("caltech_birds2011", tmp_path / "tfds", examples):
        splits = {split: load("tfds:cub", tmp_path / "tfds", split) for split in SPLITS}
    assert [splits[s].num_classes for s in SPLITS] == [100, 50, 50]
    for split in SPLITS:
        raw = load("cub", tmp_path / "raw", split)
        assert splits[split].class_names == raw.class_names
        assert splits[split].class_names == tuple(
            c for i, c in enumerate(classes) if cub_split_rule(i, split))
        if real:
            published = json.loads((shared_data_dir() / "splits" / "cub_torchmeta" /
                                    f"{split}.json").read_text())
            assert sorted(splits[split].class_names) == sorted(published)
    raw = load("cub", tmp_path / "raw", "val")
    for index in (0, 49):
        np.testing.assert_array_equal(splits["val"].images(index), raw.images(index))
    assert splits["val"].images(0).shape == (3, 84, 84, 3)
    (support, _, query), _ = next(iter(episode_dataset(
        splits["test"], n_way=5, k_shot=1, k_query=2, meta_batch_size=1, seed=0)))
    assert support.shape == (1, 5, 84, 84, 3) and query.shape == (1, 10, 84, 84, 3)


# --- errors


@pytest.mark.parametrize("name,tfds_name,how", [
    ("tfds:omniglot", "omniglot", "tfds build omniglot"),
    ("tfds:cub", "caltech_birds2011", "tfds build caltech_birds2011"),
    ("tfds:fc100", "cifar100", "tfds build cifar100"),
    ("tfds:mini_imagenet", "mini_imagenet",
     "python -m mgaug_tf.data.tfds_builders mini_imagenet"),
    ("tfds:tiered_imagenet", "tiered_imagenet",
     "python -m mgaug_tf.data.tfds_builders tiered_imagenet"),
])
def test_not_prepared_error_names_dataset_data_dir_and_how(tmp_path, name, tfds_name, how):
    with pytest.raises(DataNotFoundError) as error:
        load(name, tmp_path, "train")
    message = str(error.value)
    assert f"'{tfds_name}'" in message and str(tmp_path) in message and how in message
    assert "raw files" in message


def test_other_prepared_version_is_named(tmp_path):
    (tmp_path / "omniglot" / "2.0.0").mkdir(parents=True)
    (tmp_path / "omniglot" / "2.0.0" / "dataset_info.json").write_text("{}")
    with pytest.raises(DataNotFoundError, match=r"it holds \['omniglot/2.0.0'\], not the version"):
        load("tfds:omniglot", tmp_path, "train")


def test_missing_data_dir_unknown_name_and_option(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load("tfds:omniglot", tmp_path / "absent", "train")
    with pytest.raises(ValueError, match="tfds:omniglot"):
        load("tfds:imagenet", tmp_path, "train")
    with pytest.raises(ValueError, match="Unknown option"):
        load("tfds:cub", tmp_path, "train", split_scheme="vinyals")

"""Writers of small benchmark files in each on-disk format, for the data tests.

They write what users really have: Python-2 pickles (byte-string keys, numpy
data as `str`), PNG bytes in `(L, 1)` uint8 arrays, BGR npz files, labels
numbered across splits.
"""

import io
import json
import pickle
import struct
import zipfile

import numpy as np
from PIL import Image


class _Python2Pickler(pickle._Pickler):
    """Pickles `bytes` as Python 2 `str` (SHORT_BINSTRING / BINSTRING).

    Python 3 protocol 2 would text-encode bytes through `_codecs.encode`;
    Python 2 stored them verbatim, and so do the benchmark pickles.
    """

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj):
        size = len(obj)
        if size < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([size]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", size) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def write_python2_pickle(obj, path):
    """Writes `obj` as Python 2 would (protocol 2, numpy.core globals)."""
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump(obj)
    data = buffer.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    path.write_bytes(data)
    return path


def random_images(count, size, channels=3, seed=0):
    """Smooth random uint8 images `[count, size, size, channels]` (compress like photos)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (count, 4, 4, channels))
    images = np.stack([
        np.asarray(Image.fromarray(image.astype(np.uint8).squeeze(-1) if channels == 1
                                   else image.astype(np.uint8)).resize((size, size),
                                                                       Image.BICUBIC))
        for image in coarse]).reshape(count, size, size, channels)
    noise = rng.integers(-8, 9, images.shape)
    return np.clip(images.astype(np.int64) + noise, 0, 255).astype(np.uint8)


def encode(image, fmt="PNG", **kwargs):
    """Encodes a uint8 `[H, W, C]` image to PNG/JPEG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(
        buffer, fmt, **kwargs)
    return buffer.getvalue()


def write_ren_tiered(root, split, images, labels, categories, class_names, category_names,
                     python2=True):
    """Ren et al. `{split}_images_png.pkl` + `{split}_labels.pkl`."""
    arrays = []
    for index, image in enumerate(images):
        png = np.frombuffer(encode(image), np.uint8)
        # The release stores (L, 1) arrays; accept (L,) too.
        arrays.append(png.reshape(-1, 1) if index % 3 else png.copy())
    labels_dict = {b"label_specific": np.asarray(labels, np.int64),
                   b"label_general": np.asarray(categories, np.int64),
                   b"label_specific_str": [name.encode() for name in class_names],
                   b"label_general_str": [name.encode() for name in category_names]}
    images_path = root / f"{split}_images_png.pkl"
    labels_path = root / f"{split}_labels.pkl"
    if python2:
        write_python2_pickle(arrays, images_path)
        write_python2_pickle(labels_dict, labels_path)
    else:  # re-written by Python 3 with protocol 2: bytes are text-encoded
        images_path.write_bytes(pickle.dumps(arrays, protocol=2))
        labels_path.write_bytes(pickle.dumps(labels_dict, protocol=2))
    return images_path, labels_path


def write_npz_tiered(root, split, images_rgb, labels, compressed=False):
    """MetaOptNet/FEAT `{split}_images.npz` (BGR) + `{split}_labels.pkl` (`labels`)."""
    save = np.savez_compressed if compressed else np.savez
    save(root / f"{split}_images.npz", images=images_rgb[..., ::-1])
    write_python2_pickle({b"labels": [int(label) for label in labels]},
                         root / f"{split}_labels.pkl")
    return root / f"{split}_images.npz", root / f"{split}_labels.pkl"


def write_ravi_mini(root, split, classes, file_name=None):
    """Ravi & Larochelle `{split}.csv` + flat `images/`; classes: {wnid: [images]}.

    Returns {wnid: [file paths]} in csv order.
    """
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows, paths = ["filename,label"], {}
    for wnid, images in classes.items():
        for index, image in enumerate(images):
            name = f"{wnid}{index + 1:08d}.jpg"
            (root / "images" / name).write_bytes(encode(image, "JPEG", quality=95))
            rows.append(f"{name},{wnid}")
            paths.setdefault(wnid, []).append(root / "images" / name)
    (root / (file_name or f"{split}.csv")).write_text("\n".join(rows) + "\n")
    return paths


def write_omniglot(path, alphabets, as_zip, set_name):
    """An `images_{set}` zip or folder; alphabets: {alphabet: [[105x105 1-bit images]]}.

    Returns {(alphabet, character): [uint8 0/255 images]} as written.
    """
    written = {}
    archive = zipfile.ZipFile(path, "w") if as_zip else None
    for alphabet, characters in alphabets.items():
        for number, images in enumerate(characters, start=1):
            character = f"character{number:02d}"
            for drawing, image in enumerate(images, start=1):
                name = f"images_{set_name}/{alphabet}/{character}/{number:04d}_{drawing:02d}.png"
                buffer = io.BytesIO()
                Image.fromarray(image).convert("1").save(buffer, "PNG")
                if as_zip:
                    archive.writestr(name, buffer.getvalue())
                else:
                    target = path / name.split("/", 1)[1]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(buffer.getvalue())
                written.setdefault((alphabet, character), []).append(image)
    if archive:
        archive.close()
    return written


def write_json(path, obj):
    path.write_text(json.dumps(obj))
    return path

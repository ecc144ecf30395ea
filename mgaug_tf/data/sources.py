"""Where a split's pixels come from: arrays, or encoded images decoded on demand.

A source maps integer item ids to uint8 images of one fixed shape. Both
`FewShotSplit.images` and the episode pipeline call `ImageSource.load`, so
what a user inspects is exactly what the learner is fed.
"""

import io
import logging
import os
import re
from concurrent import futures

import numpy as np
from PIL import Image

from mgaug_tf.data.errors import CorruptDataError, DataNotFoundError, clause

logger = logging.getLogger(__name__)

# Decoded images are kept in memory when the whole split costs less than this.
DEFAULT_CACHE_LIMIT_BYTES = 512 * 2**20
# The name of `resize_image`'s rule in a source's `preprocessing` (and an export's metadata).
RESIZE_RULE = "pil_bilinear"


def resize_image(image, size):
    """Resizes a uint8 `[H, W, C]` image to `[size, size, C]` (bilinear, antialiased).

    Pillow's bilinear filter, the width first, then the height, each pass
    rounded to uint8. One `resize` call would let Pillow pick the order of
    its two passes (newer versions pick by cost), which moves rounding; the
    fixed order is the rule `mgaug_tf.export.resize_like_pil` reproduces.
    """
    if image.shape[0] == size and image.shape[1] == size:
        return image
    mode = "L" if image.shape[2] == 1 else "RGB"
    pil = Image.fromarray(image[..., 0] if mode == "L" else image, mode)
    if pil.width != size:
        pil = pil.resize((size, pil.height), Image.Resampling.BILINEAR)
    if pil.height != size:
        pil = pil.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(pil).reshape(size, size, image.shape[2])


def decode_image(data, channels, size, what):
    """Decodes PNG/JPEG bytes to a uint8 `[size, size, channels]` array.

    Args:
        data: Encoded image bytes.
        channels: 1 (grayscale) or 3 (RGB); other modes are converted.
        size: Output height and width; the image is resized when it differs.
        what: The file or item, named in the error when decoding fails.

    Raises:
        CorruptDataError: The bytes are not a decodable image.
    """
    if not data:
        raise CorruptDataError(f"Cannot decode image {what}: it is empty (0 bytes).")
    try:
        with Image.open(io.BytesIO(data)) as pil:
            mode = "L" if channels == 1 else "RGB"
            pil.load()
            if pil.mode != mode:
                pil = pil.convert(mode)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        # PIL names the in-memory buffer ("<_io.BytesIO object at 0x...>"): drop it.
        reason = re.sub(r" ?<_io\.BytesIO object at 0x[0-9a-f]+>", "", str(error)).rstrip(". ")
        raise CorruptDataError(
            f"Cannot decode image {what} ({len(data)} bytes): {reason}. The image is truncated "
            "or corrupt, or is not an image Pillow decodes.") from None
    image = np.asarray(pil).reshape(pil.size[1], pil.size[0], channels)
    return resize_image(image, size)


# Leading bytes of the encodings Pillow decodes here (JPEG, PNG, GIF, BMP, WebP).
IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM",
                    b"RIFF")
# The encodings IMAGE_SIGNATURES recognises, in messages.
IMAGE_KINDS = "JPEG, PNG, GIF, BMP or WebP"
SIGNATURE_BYTES = 8


def quick_image_problem(size, head):
    """Why an encoded image is certainly undecodable, from its size and first bytes, or None.

    Catches empty files and non-image bytes (the signature is wrong); a
    truncated image passes, since only decoding it finds that.

    Args:
        size: Length of the encoded image in bytes.
        head: Its first `SIGNATURE_BYTES` bytes (or fewer when shorter).
    """
    if size == 0:
        return "empty (0 bytes)"
    if not head.startswith(IMAGE_SIGNATURES):
        return (f"not a {IMAGE_KINDS} file ({size} bytes starting "
                f"{bytes(head[:4]).hex(' ')})")
    return None


class ImageSource:
    """Maps item ids to uint8 images of shape `image_shape`."""

    image_shape = None  # (height, width, channels)
    invert = False  # whether pixels are inverted (255 - x) after resizing
    is_image = True

    @property
    def example_shape(self):
        """The shape of one item as `load` returns it (images: `image_shape`)."""
        return self.image_shape

    @property
    def preprocessing(self):
        """How a file or array becomes this source's uint8 pixels, as a JSON-ready dict.

        `{"channels": C, "size": [H, W], "resize": "pil_bilinear", "invert":
        bool}`: converted to C channels (Pillow's `convert("L")`/`"RGB"`),
        resized to `[H, W]` by `resize_image` when the size differs, then
        inverted (`255 - x`) when `invert`. `mgaug_tf.export` applies the same
        rule inside a SavedModel.
        """
        height, width, channels = (int(size) for size in self.image_shape)
        return {"channels": channels, "size": [height, width], "resize": RESIZE_RULE,
                "invert": bool(self.invert)}

    def __len__(self):
        raise NotImplementedError

    def load(self, items):
        """Returns the uint8 images `[len(items), H, W, C]` for int item ids."""
        raise NotImplementedError

    def check(self, items, decode=False, workers=None, progress=None):
        """Finds the items that cannot be read, without stopping at the first.

        Args:
            items: int item ids to check.
            decode: False: a quick check of each encoded image's size and
                signature (sources without encoded images report nothing).
                True: decode every image, as training would.
            workers: Threads decoding in parallel (default: the CPU count).
            progress: Optional `callback(number of items done)`, called as
                the check advances.

        Returns:
            A list of one-line problems, each naming the file or item, in
            item order (empty when every item is readable).
        """
        del decode, workers
        if progress is not None:
            progress(len(items))
        return []


class ArraySource(ImageSource):
    """Images held in a uint8 array, in memory or memory-mapped.

    Args:
        array: uint8 `[N, H, W, C]` or `[N, H, W]` (grayscale).
        bgr: Whether channels are stored BGR; loaded images are flipped to RGB
            (only the images read, so a memory map stays untouched).
        image_size: Resize loaded images to this size, when it differs.
    """

    def __init__(self, array, bgr=False, image_size=None):
        if array.ndim == 3:
            array = array[..., None]
        self._array = array
        self._bgr = bgr
        height, width, channels = array.shape[1:]
        self._size = image_size
        if image_size is not None:
            height = width = image_size
        self.image_shape = (height, width, channels)

    def __len__(self):
        return len(self._array)

    def load(self, items):
        # Sorted reads keep a memory map's disk access sequential.
        items = np.asarray(items, np.int64)
        order = np.argsort(items, kind="stable")
        images = np.empty((len(items),) + self._array.shape[1:], np.uint8)
        images[order] = self._array[items[order]]
        if self._bgr:
            images = images[..., ::-1]
        if self._size is not None:
            images = np.stack([resize_image(image, self._size) for image in images]) \
                if len(images) else images.reshape((0,) + self.image_shape)
        return np.ascontiguousarray(images)


class ExampleSource(ImageSource):
    """Non-image examples held in a numeric array `[N, ...]`, read as float32.

    `load` indexes the array with the episode's item ids only (a memory map
    stays on disk except for the rows read) and casts them to float32; the
    values are not rescaled.

    Args:
        array: Numeric (bool, int or float) `[N, *example_shape]`, in memory
            or memory-mapped.
    """

    is_image = False
    image_shape = None
    preprocessing = None

    def __init__(self, array):
        self._array = array

    @property
    def example_shape(self):
        return tuple(int(size) for size in self._array.shape[1:])

    def __len__(self):
        return len(self._array)

    def load(self, items):
        """float32 `[len(items), *example_shape]`: rows `items` of the array."""
        items = np.asarray(items, np.int64)
        # Sorted reads keep a memory map's disk access sequential.
        order = np.argsort(items, kind="stable")
        examples = np.empty((len(items),) + self.example_shape, np.float32)
        examples[order] = self._array[items[order]]
        return examples


class EncodedSource(ImageSource):
    """Encoded images (PNG/JPEG bytes) decoded when loaded.

    Args:
        count: Number of items.
        fetch: `fetch(item) -> bytes`, the encoded image. Called from several
            threads at once by the episode pipeline.
        peek: Optional `peek(item) -> (size in bytes, first bytes)` for the
            quick check (`check(decode=False)`), cheaper than `fetch` (a file
            size and its first `SIGNATURE_BYTES` bytes); without it the quick
            check reports nothing.
        describe: `describe(item) -> str`, the file or item named in errors.
        image_size: Decoded images are resized to `[image_size, image_size]`.
        channels: 1 or 3.
        invert: Invert the pixels (`255 - x`) after resizing (Omniglot's
            black strokes on white become white on black).
        cache_limit_bytes: Keep decoded images in memory when all `count` of
            them fit in this many bytes (0 disables the cache).
    """

    def __init__(self, count, fetch, describe, image_size, channels, invert=False,
                 cache_limit_bytes=DEFAULT_CACHE_LIMIT_BYTES, peek=None):
        self._count = count
        self._fetch = fetch
        self._peek = peek
        self._describe = describe
        self._channels = channels
        self.invert = bool(invert)
        self.image_shape = (image_size, image_size, channels)
        decoded_bytes = count * image_size * image_size * channels
        self._cache = None
        if 0 < decoded_bytes <= cache_limit_bytes:
            # np.zeros memory is committed only as images are decoded into it.
            self._cache = np.zeros((count,) + self.image_shape, np.uint8)
            self._cached = np.zeros(count, bool)

    def __len__(self):
        return self._count

    def load(self, items):
        items = np.asarray(items, np.int64)
        images = np.empty((len(items),) + self.image_shape, np.uint8)
        for position, item in enumerate(items):
            if self._cache is not None and self._cached[item]:
                images[position] = self._cache[item]
                continue
            image = decode_image(self._fetch(item), self._channels, self.image_shape[0],
                                 self._describe(item))
            if self.invert:
                image = 255 - image
            images[position] = image
            if self._cache is not None:
                # Racing threads may decode the same item twice; both write
                # identical pixels, so no lock is needed.
                self._cache[item] = image
                self._cached[item] = True
        return images

    def _problem(self, item, decode):
        try:
            if decode:
                decode_image(self._fetch(item), self._channels, self.image_shape[0],
                             self._describe(item))
                return None
            if self._peek is None:
                return None
            problem = quick_image_problem(*self._peek(item))
        except (CorruptDataError, DataNotFoundError) as error:
            return str(error)
        return None if problem is None else f"{self._describe(item)}: {problem}"

    def check(self, items, decode=False, workers=None, progress=None):
        items = [int(item) for item in items]
        if not decode or len(items) < 2:
            problems = [self._problem(item, decode) for item in items]
            if progress is not None:
                progress(len(items))
            return [problem for problem in problems if problem]
        # Pillow decodes without the GIL: threads use every core.
        chunks = [items[start:start + 64] for start in range(0, len(items), 64)]
        problems = []
        with futures.ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
            done = 0
            for chunk, found in zip(chunks, pool.map(
                    lambda chunk: [self._problem(item, True) for item in chunk], chunks)):
                problems.extend(problem for problem in found if problem)
                done += len(chunk)
                if progress is not None:
                    progress(done)
        return problems


class RotatedSource(ImageSource):
    """Every image of `base` at several multiples of 90 degrees.

    Item `i * len(rotations) + r` is base item `i` rotated counter-clockwise
    by `rotations[r]` degrees.
    """

    def __init__(self, base, rotations):
        for degrees in rotations:
            if degrees % 90:
                raise ValueError(f"rotations must be multiples of 90 degrees; got {degrees}.")
        self._base = base
        self._quarter_turns = [(degrees // 90) % 4 for degrees in rotations]
        self.image_shape = base.image_shape
        self.invert = base.invert

    def __len__(self):
        return len(self._base) * len(self._quarter_turns)

    def check(self, items, decode=False, workers=None, progress=None):
        base_items = np.unique(np.asarray(items, np.int64) // len(self._quarter_turns))
        return self._base.check(base_items, decode, workers, progress)

    def load(self, items):
        items = np.asarray(items, np.int64)
        turns = len(self._quarter_turns)
        images = self._base.load(items // turns)
        for position, rotation in enumerate(items % turns):
            images[position] = np.rot90(images[position], self._quarter_turns[rotation])
        return images



IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def list_images(folder):
    """The image files (jpg/jpeg/png) directly in `folder`, sorted by name."""
    return sorted(path for path in folder.iterdir()
                  if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file())


def read_file(path):
    """The bytes of `path`; a clear error naming it when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise DataNotFoundError(f"Image file {path} is missing.") from None
    except OSError as error:
        raise CorruptDataError(f"Cannot read image file {path}: {clause(error)}.") from None


def peek_file(path):
    """`(size in bytes, first SIGNATURE_BYTES bytes)` of an image file (quick check)."""
    try:
        with open(path, "rb") as handle:
            return os.fstat(handle.fileno()).st_size, handle.read(SIGNATURE_BYTES)
    except FileNotFoundError:
        raise DataNotFoundError(f"Image file {path} is missing.") from None
    except OSError as error:
        raise CorruptDataError(f"Cannot read image file {path}: {clause(error)}.") from None


def file_source(paths, image_size, channels, cache_limit_bytes, invert=False):
    """An `EncodedSource` over image files (item `i` is `paths[i]`)."""
    paths = [str(path) for path in paths]
    return EncodedSource(len(paths), lambda item: read_file(paths[item]),
                         lambda item: paths[item], image_size, channels,
                         invert=invert, cache_limit_bytes=cache_limit_bytes,
                         peek=lambda item: peek_file(paths[item]))

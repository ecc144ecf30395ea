"""Episode rate and memory of the data pipeline (run by hand, not a test).

    python -m benchmarks.data_pipeline [--ren-images 20000] [--seconds 8]
        [--skip-tfds | --tfds-only]

Run it from the repository root, as a module (it writes its data with the
test suite's writers, `tests.data.writers`), with mgaug-tf installed
(`pip install -e .`).

Measures, for 5-way 1-shot 15-query 84x84 training episodes (default
augmentation) at meta-batch 1 and 4:
  * the Ravi & Larochelle csv + JPEG layout (the real 2,000-image subset from
    ../shared/data when present, else synthetic JPEGs), decoding every image
    (`cache_decoded=False`, as for the full 38,400-image train split) and with
    the automatic decoded-image cache;
  * a synthetic Ren et al. tieredImageNet PNG pickle written in /tmp the way
    Python 2 wrote it (PNG bytes stored verbatim, read in place).
  * TFDS-prepared data read with `load("tfds:...")`: `mini_imagenet` built by
    the package's builder from the same Ravi folder (same episode shape as the
    Ravi rows), and `omniglot` prepared by TFDS's own builder from the real
    zips in ../shared/data (its download step pointed at the extracted zips:
    no network), next to the raw Omniglot reader, 5-way 1-shot 15-query 28x28
    at meta-batch 4 (`--skip-tfds` leaves these out).
Then, each in a fresh process, the memory (RssAnon: private memory, not the
page cache) a split costs per image held, for the in-place PNG pickle, the
same pickle re-written by Python 3 (unpickled into memory), the npz memory
map and the TFDS-prepared splits, plus what the running pipeline adds.
"""

import argparse
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.exit("run it from the repository root as `python -m benchmarks.data_pipeline ...` "
             "(it imports the tests' data writers).")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]

import numpy as np  # noqa: E402

from mgaug_tf.data import episode_dataset, load  # noqa: E402
from tests.conftest import shared_data_dir  # noqa: E402
from tests.data.writers import (random_images, write_npz_tiered, write_ravi_mini,  # noqa: E402
                                write_ren_tiered)


def rss_anon_bytes():
    """Private resident memory of this process (Linux), excluding mapped files."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("RssAnon not in /proc/self/status")


def episodes_per_second(split, meta_batch_size, seconds, image_size=84):
    dataset = episode_dataset(split, n_way=5, k_shot=1, k_query=15,
                              meta_batch_size=meta_batch_size, image_size=image_size, seed=0)
    iterator = iter(dataset)
    for _ in range(3):  # warm up: tracing, autotuning, first reads
        next(iterator)
    batches, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        next(iterator)
        batches += 1
    return batches * meta_batch_size / (time.perf_counter() - start)


def ravi_dir(work):
    shared = shared_data_dir()
    archive = shared / "miniimagenet" / "miniimagenet_subset20.tar" if shared else None
    target = work / "mini"
    if archive is not None and archive.is_file():
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
        return target, "real miniImageNet subset (64 train classes x 20 JPEGs)"
    images = random_images(100 * 20, 84, seed=1)
    first = 0
    for split, count in (("train", 64), ("val", 16), ("test", 20)):
        write_ravi_mini(target, split, {f"n{c:08d}": images[c * 20:(c + 1) * 20]
                                        for c in range(first, first + count)})
        first += count
    return target, "synthetic Ravi layout (64 classes x 20 JPEGs)"


def tfds_mini(work, mini):
    """The Ravi folder built into a TFDS `mini_imagenet` by the package's builder."""
    import tensorflow_datasets as tfds
    from mgaug_tf.data.tfds_builders import MiniImagenet
    data_dir = work / "tfds_mini"
    MiniImagenet(data_dir=str(data_dir)).download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(mini),
                                                     try_download_gcs=False))
    return data_dir


def tfds_omniglot(work):
    """TFDS's own `omniglot` prepared from the real zips, offline; None without them.

    TFDS's builder downloads four zips; its download step is pointed at the
    extracted real ones instead (`small1`/`small2`, subsets TFDS adds, at one
    background alphabet each). The records are what `tfds build omniglot`
    writes from the original zips.
    """
    import zipfile
    from unittest import mock
    import tensorflow_datasets as tfds
    shared = shared_data_dir()
    zips = [shared / "omniglot" / f"images_{name}.zip" for name in ("background", "evaluation")] \
        if shared else []
    if not zips or not all(path.is_file() for path in zips):
        return None, None
    folders = {}
    for key, path in zip(("train", "eval"), zips):
        folders[key] = work / "omniglot_zips" / key
        with zipfile.ZipFile(path) as archive:
            archive.extractall(folders[key])
    alphabet = sorted((folders["train"] / "images_background").iterdir())[0]
    for key in ("small1", "small2"):
        folders[key] = work / "omniglot_zips" / key
        (folders[key] / f"images_background_{key}").mkdir(parents=True)
        (folders[key] / f"images_background_{key}" / alphabet.name).symlink_to(alphabet)
    raw = work / "omniglot_raw"
    raw.mkdir()
    for path in zips:
        (raw / path.name).symlink_to(path)
    data_dir = work / "tfds_omniglot"
    with mock.patch.object(tfds.download.DownloadManager, "download_and_extract",
                           lambda self, urls: {key: str(folders[key]) for key in urls}):
        tfds.builder("omniglot", data_dir=str(data_dir)).download_and_prepare(
            download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    return data_dir, raw


def ren_pickles(work, count, classes=200):
    """Ren-format pickles of `count` 84x84 PNGs: Python 2 style, and Python 3 re-written."""
    images = random_images(count, 84, seed=2)
    labels = np.arange(count) % classes
    python2 = work / "ren_py2"
    python3 = work / "ren_py3"
    python2.mkdir()
    python3.mkdir()
    names = [f"n{c:08d}" for c in range(classes)]
    write_ren_tiered(python2, "train", images, labels, labels % 20, names,
                     [f"c{c}" for c in range(20)], python2=True)
    write_ren_tiered(python3, "train", images, labels, labels % 20, names,
                     [f"c{c}" for c in range(20)], python2=False)
    npz = work / "npz"
    npz.mkdir()
    write_npz_tiered(npz, "train", images, labels)
    png_bytes = (python2 / "train_images_png.pkl").stat().st_size / count
    return python2, python3, npz, png_bytes


def measure_memory(data_dir, count, episodes=200, name="tieredimagenet"):
    """In a fresh process: RssAnon per image after `load`, and the pipeline's growth.

    For `tfds:` names the val split is loaded first, so TFDS's and tf.data's
    one-time set-up is not counted per image; `count` is then the train
    split's image count.
    """
    import json
    import gc
    if name.startswith("tfds:"):
        load(name, data_dir, "val", cache_decoded=False)
    gc.collect()
    before = rss_anon_bytes()
    split = load(name, data_dir, "train", cache_decoded=False)
    loaded = rss_anon_bytes()
    if name.startswith("tfds:"):
        count = int(split.class_sizes.sum())
    iterator = iter(episode_dataset(split, 5, 1, 15, 4, seed=0))
    for _ in range(episodes // 4):
        next(iterator)
    print(json.dumps({"per_image": (loaded - before) / count,
                      "pipeline_mb": (rss_anon_bytes() - loaded) / 2**20,
                      "description": split.description}))


def memory_in_subprocess(data_dir, count, name="tieredimagenet"):
    import json
    import subprocess
    result = subprocess.run([sys.executable, "-m", "benchmarks.data_pipeline", "--memory-of",
                             str(data_dir), "--memory-name", name, "--ren-images", str(count)],
                            capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ren-images", type=int, default=20000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--skip-tfds", action="store_true",
                        help="Leave out the TFDS-prepared rows.")
    parser.add_argument("--tfds-only", action="store_true",
                        help="Only the TFDS rows and the raw readers' rows beside them (no Ren "
                             "pickles).")
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)  # internal: child process
    parser.add_argument("--memory-name", default="tieredimagenet", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_of:
        measure_memory(Path(args.memory_of), args.ren_images, name=args.memory_name)
        return
    print(f"CPU cores visible: {os.cpu_count()}")
    with tempfile.TemporaryDirectory(prefix="mgaug_bench_") as work:
        work = Path(work)
        mini, mini_what = ravi_dir(work)
        memory_rows, rate_rows = [], []
        if not args.tfds_only:
            start = time.perf_counter()
            python2, python3, npz, png_bytes = ren_pickles(work, args.ren_images)
            print(f"wrote {args.ren_images} PNGs ({png_bytes / 1024:.1f} KiB each) as Ren "
                  f"pickles and npz in {time.perf_counter() - start:.0f}s")
            memory_rows += [("Ren PNG pickle, in place (Python 2 file)", python2, None),
                            ("Ren PNG pickle, unpickled (Python 3 re-write)", python3, None),
                            ("MetaOptNet npz, memory-mapped", npz, None)]
        rate_rows += [
            (f"Ravi csv + JPEG, decode every image [{mini_what}]",
             lambda: load("miniimagenet", mini, "train", cache_decoded=False), 84),
            ("Ravi csv + JPEG, decoded-image cache (auto)",
             lambda: load("miniimagenet", mini, "train"), 84)]
        if not args.tfds_only:
            rate_rows.append(
                (f"Ren PNG pickle, in place, decode every image ({args.ren_images} images)",
                 lambda: load("tieredimagenet", python2, "train", cache_decoded=False), 84))
        if not args.skip_tfds:
            start = time.perf_counter()
            mini_tfds = tfds_mini(work, mini)
            print(f"built TFDS mini_imagenet from the Ravi folder in "
                  f"{time.perf_counter() - start:.0f}s")
            memory_rows.append(("TFDS mini_imagenet (PNG records)", mini_tfds,
                                "tfds:mini_imagenet"))
            rate_rows += [
                ("TFDS mini_imagenet (same images), decode every image",
                 lambda: load("tfds:mini_imagenet", mini_tfds, "train", cache_decoded=False), 84),
                ("TFDS mini_imagenet, decoded-image cache (auto)",
                 lambda: load("tfds:mini_imagenet", mini_tfds, "train"), 84)]
            start = time.perf_counter()
            omniglot_tfds, omniglot_raw = tfds_omniglot(work)
            if omniglot_tfds is None:
                print("no ../shared/data/omniglot zips: TFDS omniglot rows left out")
            else:
                print(f"prepared TFDS omniglot from the real zips in "
                      f"{time.perf_counter() - start:.0f}s")
                memory_rows.append(("TFDS omniglot, Vinyals train (PNG files)", omniglot_tfds,
                                    "tfds:omniglot"))
                rate_rows += [
                    ("raw Omniglot zips, decode every image (28x28)",
                     lambda: load("omniglot", omniglot_raw, "train", cache_decoded=False), 28),
                    ("raw Omniglot zips, decoded-image cache (auto, 28x28)",
                     lambda: load("omniglot", omniglot_raw, "train"), 28),
                    ("TFDS omniglot, decode every image (28x28)",
                     lambda: load("tfds:omniglot", omniglot_tfds, "train",
                                  cache_decoded=False), 28),
                    ("TFDS omniglot, decoded-image cache (auto, 28x28)",
                     lambda: load("tfds:omniglot", omniglot_tfds, "train"), 28)]

        print("\nProcess memory (RssAnon, fresh process) per image held, and what 200 "
              "episodes of the pipeline add:")
        for what, path, name in memory_rows:
            memory = memory_in_subprocess(path, args.ren_images, name or "tieredimagenet")
            print(f"  {what:46s} {memory['per_image']:8.0f} B/image  "
                  f"(+{memory['pipeline_mb']:.0f} MB pipeline)")
            if name:
                print(f"      {memory['description']}")

        print("\n5-way 1-shot 15-query training episodes/s (default augmentation):")
        for what, make_split, size in rate_rows:
            start = time.perf_counter()
            split = make_split()
            loaded = time.perf_counter() - start
            rates = [episodes_per_second(split, batch, args.seconds, size) for batch in (1, 4)]
            print(f"  {what}\n      load {loaded:5.1f}s   B=1: {rates[0]:6.1f} episodes/s   "
                  f"B=4: {rates[1]:6.1f} episodes/s")


if __name__ == "__main__":
    main()

"""Episode rate and memory of the data pipeline (run by hand, not a test).

    python benchmarks/data_pipeline.py [--ren-images 20000] [--seconds 8]

Measures, for 5-way 1-shot 15-query 84x84 training episodes (default
augmentation) at meta-batch 1 and 4:
  * the Ravi & Larochelle csv + JPEG layout (the real 2,000-image subset from
    ../shared/data when present, else synthetic JPEGs), decoding every image
    (`cache_decoded=False`, as for the full 38,400-image train split) and with
    the automatic decoded-image cache;
  * a synthetic Ren et al. tieredImageNet PNG pickle written in /tmp the way
    Python 2 wrote it (PNG bytes stored verbatim, read in place).
Then, each in a fresh process, the memory (RssAnon: private memory, not the
page cache) a split costs per image held, for the in-place PNG pickle, the
same pickle re-written by Python 3 (unpickled into memory), and the npz
memory map, plus what the running pipeline adds.
"""

import argparse
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from mgaug_tf.data import episode_dataset, load  # noqa: E402
from tests.data.conftest import shared_data_dir  # noqa: E402
from tests.data.writers import (random_images, write_npz_tiered, write_ravi_mini,  # noqa: E402
                                write_ren_tiered)


def rss_anon_bytes():
    """Private resident memory of this process (Linux), excluding mapped files."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("RssAnon not in /proc/self/status")


def episodes_per_second(split, meta_batch_size, seconds):
    dataset = episode_dataset(split, n_way=5, k_shot=1, k_query=15,
                              meta_batch_size=meta_batch_size, image_size=84, seed=0)
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
    images = random_images(64 * 20, 84, seed=1)
    write_ravi_mini(target, "train", {f"n{c:08d}": images[c * 20:(c + 1) * 20]
                                      for c in range(64)})
    return target, "synthetic Ravi layout (64 classes x 20 JPEGs)"


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


def measure_memory(data_dir, count, episodes=200):
    """In a fresh process: RssAnon per image after `load`, and the pipeline's growth."""
    import json
    import gc
    gc.collect()
    before = rss_anon_bytes()
    split = load("tieredimagenet", data_dir, "train", cache_decoded=False)
    loaded = rss_anon_bytes()
    iterator = iter(episode_dataset(split, 5, 1, 15, 4, seed=0))
    for _ in range(episodes // 4):
        next(iterator)
    print(json.dumps({"per_image": (loaded - before) / count,
                      "pipeline_mb": (rss_anon_bytes() - loaded) / 2**20}))


def memory_in_subprocess(data_dir, count):
    import json
    import subprocess
    result = subprocess.run([sys.executable, __file__, "--memory-of", str(data_dir),
                             "--ren-images", str(count)], capture_output=True, text=True,
                            check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ren-images", type=int, default=20000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)  # internal: child process
    args = parser.parse_args()
    if args.memory_of:
        measure_memory(Path(args.memory_of), args.ren_images)
        return
    print(f"CPU cores visible: {os.cpu_count()}")
    with tempfile.TemporaryDirectory(prefix="mgaug_bench_") as work:
        work = Path(work)
        mini, mini_what = ravi_dir(work)
        start = time.perf_counter()
        python2, python3, npz, png_bytes = ren_pickles(work, args.ren_images)
        print(f"wrote {args.ren_images} PNGs ({png_bytes / 1024:.1f} KiB each) as Ren pickles "
              f"and npz in {time.perf_counter() - start:.0f}s")

        print("\nProcess memory (RssAnon, fresh process) per image held, and what 200 "
              "episodes of the pipeline add:")
        for what, path in (("Ren PNG pickle, in place (Python 2 file)", python2),
                           ("Ren PNG pickle, unpickled (Python 3 re-write)", python3),
                           ("MetaOptNet npz, memory-mapped", npz)):
            memory = memory_in_subprocess(path, args.ren_images)
            print(f"  {what:46s} {memory['per_image']:8.0f} B/image  "
                  f"(+{memory['pipeline_mb']:.0f} MB pipeline)")

        print("\n5-way 1-shot 15-query 84x84 training episodes/s (default augmentation):")
        cases = [
            (f"Ravi csv + JPEG, decode every image [{mini_what}]",
             load("miniimagenet", mini, "train", cache_decoded=False)),
            ("Ravi csv + JPEG, decoded-image cache (auto)", load("miniimagenet", mini, "train")),
            (f"Ren PNG pickle, in place, decode every image ({args.ren_images} images)",
             load("tieredimagenet", python2, "train", cache_decoded=False)),
        ]
        for what, split in cases:
            rates = [episodes_per_second(split, batch, args.seconds) for batch in (1, 4)]
            print(f"  {what}\n      B=1: {rates[0]:6.1f} episodes/s   B=4: {rates[1]:6.1f} "
                  "episodes/s")


if __name__ == "__main__":
    main()

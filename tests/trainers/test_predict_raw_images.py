"""Raw Omniglot PNGs through the SavedModel and mgaug-predict: the run's own pixels and accuracy.

A tiny Omniglot run (ProtoNet, a few steps) is exported once; its evaluation
episodes are rebuilt as the PNG files a user has (the zip's own bytes, or
the file turned by the class's rotation) and classified through the
SavedModel's encoded-image signature and through `mgaug_tf_cli.predict`.
"""

import io
import json
import shutil
import zipfile

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from mgaug_tf import data, export
from mgaug_tf.data import episodes, sources
from mgaug_tf_cli import flags as run_flags
from mgaug_tf_cli import predict, train

N_WAY, EPISODES, K_QUERY = 5, 3, 3
RUN_FLAGS = ["--dataset=omniglot", "--learner=protonet", "--filters=8", f"--n_way={N_WAY}",
             "--k_shot=1", "--k_query=2", f"--eval_k_query={K_QUERY}", "--meta_batch_size=2",
             "--train_steps=3", "--eval_every=3", "--val_episodes=2",
             f"--eval_episodes={EPISODES}", "--eval_seed=5", "--checkpoint_every=3",
             "--mode=train_and_eval"]


@pytest.fixture(scope="module")
def omniglot_run(omniglot_dir, tmp_path_factory):
    """`(model_dir, evaluation json, test split)` of a tiny exported Omniglot run."""
    model_dir = tmp_path_factory.mktemp("omniglot_run") / "model"
    train.run_and_report(run_flags.parse_config(
        [f"--model_dir={model_dir}", f"--data_dir={omniglot_dir}", *RUN_FLAGS]))
    evaluation = json.loads((model_dir / "eval_test.json").read_text())
    return model_dir, evaluation, data.load("omniglot", omniglot_dir, "test")


def _episode_files(split, omniglot_dir):
    """For each base item of the test split: `(zip member name, rotations)` in reader order."""
    with zipfile.ZipFile(omniglot_dir / "images_evaluation.zip") as archive:
        names = sorted(name for name in archive.namelist() if name.endswith(".png"))
    by_character = {}
    for name in names:
        alphabet, character = name.split("/")[-3:-1]
        by_character.setdefault(f"{alphabet}/{character}", []).append(name)
    characters = sorted({name.rsplit("/", 1)[0] for name in split.class_names})
    return [name for character in characters for name in by_character[character]]


def _raw_png(archive, name, degrees):
    """The PNG a user has for a class turned by `degrees`: the zip's bytes when 0."""
    original = archive.read(name)
    if degrees == 0:
        return original
    with Image.open(io.BytesIO(original)) as image:
        pixels = np.asarray(image.convert("L"))
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(np.rot90(pixels, degrees // 90))).save(buffer, "PNG")
    return buffer.getvalue()


def _episodes(omniglot_run, omniglot_dir):
    """The run's evaluation episodes: raw PNG bytes, rotations, labels and the pipeline's pixels."""
    _, evaluation, split = omniglot_run
    sample = episodes.make_episode_sampler(split, N_WAY, 1, K_QUERY, evaluation["eval_seed"])
    pipeline = data.episode_dataset(split, N_WAY, 1, K_QUERY, 1, training=False,
                                    num_episodes=EPISODES, seed=evaluation["eval_seed"])
    files = _episode_files(split, omniglot_dir)
    rotations = (0, 90, 180, 270)
    result = []
    with zipfile.ZipFile(omniglot_dir / "images_evaluation.zip") as archive:
        for episode_id, ((support, _, query), query_labels) in enumerate(pipeline):
            items, _ = sample(episode_id)
            items = items.numpy()
            degrees = [rotations[item % 4] for item in items]
            encoded = [_raw_png(archive, files[item // 4], turn)
                       for item, turn in zip(items, degrees)]
            pixels = np.concatenate([support[0].numpy(), query[0].numpy()])
            result.append((encoded, degrees, query_labels[0].numpy(), pixels))
    return result


@pytest.fixture(scope="module")
def raw_episodes(omniglot_run, omniglot_dir):
    return _episodes(omniglot_run, omniglot_dir)


def test_raw_pngs_through_the_saved_model_give_the_runs_pixels_and_accuracy(omniglot_run,
                                                                             raw_episodes):
    model_dir, evaluation, _ = omniglot_run
    model = tf.saved_model.load(str(model_dir / "export"))
    assert model.signatures["serving_default"].structured_input_signature[1][
        "support_images"].dtype == tf.string
    support_labels = tf.range(N_WAY, dtype=tf.int32)
    accuracies, turned = [], 0
    for encoded, degrees, query_labels, pixels in raw_episodes:
        graph_pixels = model.signatures[export.PREPROCESS_ENCODED_KEY](
            images=tf.constant(encoded))["images"].numpy()
        # Scaling to [0, 1] may round differently in the SavedModel's graph
        # and in tf.data's (one float32 ulp): compare the reader's uint8 levels.
        np.testing.assert_allclose(graph_pixels, pixels, rtol=0, atol=1 / 255 + 1e-7)
        for index, turn in enumerate(degrees):
            if turn in (0, 180):  # the reader's own pixels, inverted, level for level
                np.testing.assert_array_equal(np.round(graph_pixels[index] * 255),
                                              np.round(pixels[index] * 255))
                np.testing.assert_allclose(graph_pixels[index], pixels[index], rtol=0,
                                           atol=1e-7)
            else:
                # The reader turns its resized image; a turned file is resized
                # turned, so the passes' rounding meets other pixels.
                turned += 1
                assert np.abs(graph_pixels[index] - pixels[index]).max() <= 1 / 255 + 1e-7
        out = model.signatures["serving_default"](
            support_images=tf.constant(encoded[:N_WAY]), support_labels=support_labels,
            query_images=tf.constant(encoded[N_WAY:]))
        accuracies.append(float((out["predictions"].numpy() == query_labels).mean()))
        # The float contract, on the pipeline's own tensors, agrees too.
        float_out = model.signatures[export.PREPROCESSED_KEY](
            support_images=pixels[:N_WAY], support_labels=support_labels,
            query_images=pixels[N_WAY:])
        np.testing.assert_array_equal(float_out["predictions"], out["predictions"])
    assert accuracies == pytest.approx(evaluation["per_episode_accuracy"], abs=1e-6)  # float32 json
    assert turned < len(raw_episodes) * N_WAY * (1 + K_QUERY)  # some files were not turned


def test_predict_on_raw_png_folders_gives_the_runs_accuracy(omniglot_run, raw_episodes,
                                                            tmp_path):
    model_dir, evaluation, _ = omniglot_run
    accuracies = []
    for episode, (encoded, _, query_labels, _) in enumerate(raw_episodes):
        folder = tmp_path / f"episode{episode}"
        for label in range(N_WAY):
            (folder / "support" / f"class{label}").mkdir(parents=True)
            (folder / "support" / f"class{label}" / "shot.png").write_bytes(encoded[label])
        (folder / "query").mkdir()
        for index, image in enumerate(encoded[N_WAY:]):
            (folder / "query" / f"q{index:03d}.png").write_bytes(image)
        rows = predict.predict(str(model_dir / "export"), str(folder / "support"),
                               str(folder / "query"))
        predicted = np.array([int(name[len("class"):]) for _, name, _ in rows])
        accuracies.append(float((predicted == query_labels).mean()))
    assert accuracies == pytest.approx(evaluation["per_episode_accuracy"], abs=1e-6)  # float32 json


def test_uint8_arrays_of_another_size_and_channel_count(omniglot_run, raw_episodes):
    model_dir, _, _ = omniglot_run
    model = tf.saved_model.load(str(model_dir / "export"))
    encoded, _, _, _ = raw_episodes[0]
    grey = []
    for image in encoded:
        with Image.open(io.BytesIO(image)) as pil:  # 105 x 105; shown at 60 x 75
            grey.append(np.asarray(pil.convert("L").resize((75, 60)))[..., None])
    grey = np.stack(grey)
    pixels = model.signatures[export.PREPROCESS_UINT8_KEY](images=grey)["images"].numpy()
    expected = np.stack([255 - sources.resize_image(image, 28) for image in grey])
    np.testing.assert_array_equal(np.round(pixels * 255).astype(np.uint8), expected)
    labels = tf.range(N_WAY, dtype=tf.int32)
    outputs = [model.signatures[export.UINT8_KEY](support_images=images[:N_WAY],
                                                  support_labels=labels,
                                                  query_images=images[N_WAY:])
               for images in (grey, np.repeat(grey, 3, axis=-1))]  # RGB of equal channels
    np.testing.assert_array_equal(outputs[0]["logits"], outputs[1]["logits"])
    with pytest.raises(tf.errors.InvalidArgumentError, match="query_images must have shape"):
        model.signatures[export.UINT8_KEY](support_images=grey[:N_WAY], support_labels=labels,
                                           query_images=grey[N_WAY:, 0])


def test_metadata_round_trip_and_old_exports(omniglot_run, tmp_path):
    model_dir, _, split = omniglot_run
    metadata = json.loads((model_dir / "export" / export.METADATA_FILE).read_text())
    recorded = export.InputPreprocessing.from_json(metadata["preprocessing"])
    assert recorded == export.InputPreprocessing.from_split(split, 28)
    assert recorded.invert and recorded.reader_size == (28, 28) and recorded.channels == 1
    assert metadata["preprocessing"]["reader"] == dict(split.preprocessing,
                                                       channel_conversion="pillow")
    assert export.InputPreprocessing.from_json(recorded.to_json()) == recorded
    assert metadata["signatures"]["serving_default"]["same_as"] == export.ENCODED_KEY

    # An export without the preprocessing entry (written before it existed): one clear error.
    old = tmp_path / "old_export"
    shutil.copytree(model_dir / "export", old)
    del metadata["preprocessing"]
    (old / export.METADATA_FILE).write_text(json.dumps(metadata))
    (tmp_path / "support" / "a").mkdir(parents=True)
    (tmp_path / "query").mkdir()
    with pytest.raises(predict.InputError, match="has no input preprocessing .* export the run "
                                                 "again: mgaug-train --mode=export"):
        predict.predict(str(old), str(tmp_path / "support"), str(tmp_path / "query"))


def test_zero_byte_image_gets_the_readers_message(omniglot_run, tmp_path):
    model_dir, _, _ = omniglot_run
    for label in range(N_WAY):
        (tmp_path / "support" / f"class{label}").mkdir(parents=True)
        Image.new("L", (105, 105), 255).save(tmp_path / "support" / f"class{label}" / "a.png")
    (tmp_path / "query").mkdir()
    empty = tmp_path / "query" / "empty.png"
    empty.write_bytes(b"")
    # The training reader's check of the same file, word for word.
    assert sources.quick_image_problem(0, b"") == "empty (0 bytes)"
    with pytest.raises(predict.InputError) as error:
        predict.predict(str(model_dir / "export"), str(tmp_path / "support"),
                        str(tmp_path / "query"))
    assert str(error.value) == f"{empty}: empty (0 bytes)"
    # A truncated PNG passes the quick check; the graph's decoder names the file.
    good = (tmp_path / "support" / "class0" / "a.png").read_bytes()
    empty.write_bytes(good[:40])
    with pytest.raises(predict.InputError, match=f"Cannot decode image {empty} \\(40 bytes\\)"):
        predict.predict(str(model_dir / "export"), str(tmp_path / "support"),
                        str(tmp_path / "query"))

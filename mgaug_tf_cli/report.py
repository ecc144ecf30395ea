r"""Results table and plots of finished runs (`mgaug-train` model_dirs).

Reads each run's `eval_<split>.json` (mean test accuracy, 95 % CI, episodes,
configuration; for a regression run such as `--dataset=sinusoid`, the mean
squared error and its 95 % CI over the test tasks) and its TensorBoard
validation summaries (`model_dir/val`), then writes a Markdown table (a
second table for regression runs) and PNG plots of the classification runs:

    mgaug-report --model_dirs runs/a runs/b \
        --output docs/results.md --plots_dir docs/plots

(`python trainers/report.py ...` in a checkout.)

* `<plots_dir>/validation_accuracy.png`: validation accuracy vs meta-step,
  one line per run (shaded: the 95 % CI of each validation).
* `<plots_dir>/final_accuracy.png`: the evaluated accuracy of each run with
  its 95 % CI as error bars (and the published target, where known).

If `--output` already exists and holds the markers `<!-- report:begin -->`
and `<!-- report:end -->`, only the text between them is replaced, so
hand-written notes around the table survive a regeneration; a file without
them gets the block appended, a missing one is created.
"""

import argparse
import dataclasses
import glob
import json
import os
import sys

from mgaug_tf_cli import quiet

BEGIN_MARKER = "<!-- report:begin -->"
END_MARKER = "<!-- report:end -->"
VALIDATION_PLOT = "validation_accuracy.png"
FINAL_PLOT = "final_accuracy.png"

# Published accuracies (%) that the result configs reproduce, keyed by
# (dataset, learner, n_way, k_shot). First-order MAML is held to MAML's target.
TARGETS = {
    ("omniglot", "maml", 5, 1): 97.0,
    ("omniglot", "fomaml", 5, 1): 97.0,
    ("omniglot", "protonet", 5, 1): 98.0,
}


class ReportError(Exception):
    """A model_dir cannot be reported (missing or unreadable results)."""


@dataclasses.dataclass
class RunResult:
    """What the report shows of one run.

    Attributes:
        name: Display name (the model_dir's base name).
        model_dir: The run's folder.
        evaluation: The parsed `eval_<split>.json`.
        validation: `[(step, accuracy, ci95 or None)]` from the `val` summaries,
            sorted by step.
    """

    name: str
    model_dir: str
    evaluation: dict
    validation: list

    @property
    def config(self):
        return self.evaluation.get("config", {})

    @property
    def learner(self):
        return self.evaluation.get("learner") or self.config.get("learner", "?")

    @property
    def dataset(self):
        """The dataset evaluated; `train → test (HxWxC)` for a cross-domain test."""
        cross = self.evaluation.get("cross_domain")
        if cross:
            converted = cross["converted"]
            shape = "x".join(str(size) for size in converted["size"] + [converted["channels"]])
            return f"{cross['train_dataset']} → {cross['test_dataset']} ({shape})"
        return self.evaluation.get("dataset") or self.config.get("dataset", "?")

    @property
    def n_way(self):
        return self.evaluation.get("n_way", self.config.get("n_way"))

    @property
    def k_shot(self):
        return self.evaluation.get("k_shot", self.config.get("k_shot"))

    @property
    def regression(self):
        """Whether the run's objective is regression (results in MSE, not accuracy)."""
        return self.evaluation.get("objective") == "regression"

    @property
    def accuracy_percent(self):
        return 100.0 * float(self.evaluation["mean_accuracy"])

    @property
    def ci95_percent(self):
        return 100.0 * float(self.evaluation["ci95"])

    @property
    def target(self):
        """The published target accuracy (%) of this setting, or None."""
        return TARGETS.get((str(self.dataset).lower(), self.learner, self.n_way, self.k_shot))

    def mgaug_setting(self):
        """`none`, or e.g. `catfish K=3 keep 0.8-1`."""
        strategy = self.config.get("mgaug", "none")
        if strategy in (None, "none"):
            return "none"
        text = f"{strategy} K={self.config.get('num_subnets', '?')}"
        if "keep_min" in self.config:
            text += f" keep {self.config['keep_min']:g}-{self.config.get('keep_max', 1.0):g}"
        return text


def _evaluation_command(split, model_dir):
    """The `mgaug-train --mode=eval` call that writes `model_dir`'s `eval_<split>.json`.

    A split name holds no underscore (train, val, test), so `<split>_<dataset>`
    names a cross-domain test (`mgaug-train`'s `eval_<split>_<dataset>.json`).
    """
    eval_split, _, dataset = split.partition("_")
    if not dataset:
        return f"`mgaug-train --mode=eval --eval_split={split} --model_dir={model_dir}`"
    return (f"`mgaug-train --mode=eval --eval_split={eval_split} --test_dataset={dataset} "
            f"--test_data_dir=<{dataset}'s files> --model_dir={model_dir}` (no --test_data_dir "
            "for the built-in glyphs)")


def find_evaluation_json(model_dir, split=None):
    """The path of a run's evaluation JSON.

    Args:
        model_dir: The run's folder.
        split: Which `eval_<split>.json` to read; None takes `eval_test.json`
            if present, else the only `eval_*.json`.

    Returns:
        The JSON's path.

    Raises:
        ReportError: naming the path when the folder or the JSON is missing,
            or when several splits were evaluated and `split` is None.
    """
    if not os.path.isdir(model_dir):
        raise ReportError(f"model_dir {model_dir} does not exist.")
    if split is not None:
        path = os.path.join(model_dir, f"eval_{split}.json")
        if not os.path.isfile(path):
            raise ReportError(f"{path} not found: run {_evaluation_command(split, model_dir)} "
                              "first.")
        return path
    candidates = sorted(glob.glob(os.path.join(model_dir, "eval_*.json")))
    preferred = os.path.join(model_dir, "eval_test.json")
    if preferred in candidates:
        return preferred
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise ReportError(f"no evaluation JSON (eval_<split>.json) in model_dir {model_dir}: "
                          "the run has not been evaluated; run `mgaug-train --mode=eval "
                          f"--model_dir={model_dir}` first.")
    raise ReportError(f"model_dir {model_dir} holds several evaluations "
                      f"({', '.join(os.path.basename(c) for c in candidates)}); pick one "
                      "with --split.")


def read_scalars(log_dir):
    """Every scalar summary under `log_dir`: `{tag: [(step, value)]}`, sorted by step.

    Reads TF2 summaries (values stored as tensors) and TF1 ones
    (`simple_value`). When a resumed run wrote a step twice, the later
    write (by wall time) wins.

    Args:
        log_dir: A TensorBoard folder such as `model_dir/val`.

    Returns:
        The scalars; empty if the folder holds no event file.
    """
    # Deferred: parsing the command line and reporting a missing JSON stay fast.
    with quiet.native_stderr():  # TensorFlow's start-up noise, filtered for the programs
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        from tensorflow.core.util import event_pb2  # pylint: disable=import-outside-toplevel

        tf.config.list_physical_devices()  # cuInit noise

    latest = {}
    for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
        for record in tf.data.TFRecordDataset(path):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.HasField("tensor"):
                    array = tf.make_ndarray(value.tensor)
                    if array.ndim != 0 or array.dtype.kind not in "fiu":
                        continue  # histograms, text, hparams
                    number = float(array)
                elif value.HasField("simple_value"):
                    number = float(value.simple_value)
                else:
                    continue
                key = (value.tag, int(event.step))
                if key not in latest or event.wall_time >= latest[key][0]:
                    latest[key] = (event.wall_time, number)
    scalars = {}
    for (tag, step), (_, number) in sorted(latest.items()):
        scalars.setdefault(tag, []).append((step, number))
    return scalars


def load_run(model_dir, split=None):
    """Reads one run's evaluation JSON and validation curve.

    Raises:
        ReportError: naming the path when the JSON is missing or malformed.
    """
    path = find_evaluation_json(model_dir, split)
    try:
        with open(path) as file:
            evaluation = json.load(file)
    except (OSError, json.JSONDecodeError) as error:
        raise ReportError(f"cannot read {path}: {error}") from None
    regression = evaluation.get("objective") == "regression"
    metric = "mean_mse" if regression else "mean_accuracy"
    missing = [key for key in (metric, "ci95", "num_episodes") if key not in evaluation]
    if missing:
        raise ReportError(f"{path} lacks {', '.join(missing)}; is it an evaluation JSON "
                          "written by mgaug-train?")
    scalars = read_scalars(os.path.join(model_dir, "val"))
    tag = "loss" if regression else "accuracy"  # regression: the validation MSE
    ci_by_step = dict(scalars.get(f"{tag}_ci95", []))
    validation = [(step, value, ci_by_step.get(step)) for step, value in
                  scalars.get(tag, [])]
    name = os.path.basename(os.path.normpath(model_dir))
    return RunResult(name=name, model_dir=model_dir, evaluation=evaluation, validation=validation)


def markdown_table(runs):
    """The results table (Markdown) of the classification runs among `runs`."""
    header = ("| run | dataset | setting | learner | MGAug | steps | bn_mode | "
              "accuracy (%) | 95 % CI (%) | episodes | target (%) |")
    lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
    for run in runs:
        if run.regression:
            continue
        target = run.target
        steps = run.evaluation.get("step", run.config.get("train_steps", "?"))
        bn_mode = run.evaluation.get("bn_mode") or run.config.get("bn_mode", "?")
        lines.append(
            f"| {run.name} | {run.dataset} | {run.n_way}-way {run.k_shot}-shot | {run.learner} "
            f"| {run.mgaug_setting()} | {steps} | {bn_mode} | {run.accuracy_percent:.2f} "
            f"| ± {run.ci95_percent:.2f} | {run.evaluation['num_episodes']} "
            f"| {'≥ %.1f' % target if target is not None else '–'} |")
    return "\n".join(lines) + "\n"


def regression_table(runs):
    """The results table (Markdown) of the regression runs among `runs` (MSE)."""
    header = ("| run | dataset | support points | learner | MGAug | steps | inner steps | "
              "MSE | 95 % CI | tasks |")
    lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
    for run in runs:
        if not run.regression:
            continue
        steps = run.evaluation.get("step", run.config.get("train_steps", "?"))
        lines.append(
            f"| {run.name} | {run.dataset} | {run.k_shot} | {run.learner} "
            f"| {run.mgaug_setting()} | {steps} | {run.evaluation.get('eval_inner_steps', '?')} "
            f"| {float(run.evaluation['mean_mse']):.4f} | ± {float(run.evaluation['ci95']):.4f} "
            f"| {run.evaluation['num_episodes']} |")
    return "\n".join(lines) + "\n"


def plot_validation(runs, path):
    """Validation accuracy (%) vs meta-step, one line per run, CI shaded."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=100)
    for run in runs:
        if not run.validation:
            continue
        steps = [step for step, _, _ in run.validation]
        values = [100 * value for _, value, _ in run.validation]
        line, = axes.plot(steps, values, marker="o", markersize=3, label=run.name)
        if all(ci is not None for _, _, ci in run.validation):
            cis = [100 * ci for _, _, ci in run.validation]
            axes.fill_between(steps, [v - c for v, c in zip(values, cis)],
                              [v + c for v, c in zip(values, cis)],
                              color=line.get_color(), alpha=0.2, linewidth=0)
    axes.set_xlabel("meta-step")
    axes.set_ylabel("validation accuracy (%)")
    axes.set_title("Validation accuracy (shaded: 95 % CI)")
    axes.grid(True, alpha=0.3)
    if any(run.validation for run in runs):
        axes.legend(fontsize=8)
    else:
        axes.text(0.5, 0.5, "no validation summaries", ha="center", va="center",
                  transform=axes.transAxes)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def plot_final(runs, path):
    """Evaluated accuracy (%) per run with 95 % CI error bars; targets as markers."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(max(4.0, 1.4 * len(runs) + 2), 4.2), dpi=100)
    positions = list(range(len(runs)))
    values = [run.accuracy_percent for run in runs]
    axes.bar(positions, values, yerr=[run.ci95_percent for run in runs], capsize=6,
             color="tab:blue", alpha=0.8)
    targets = [(position, run.target) for position, run in zip(positions, runs)
               if run.target is not None]
    if targets:
        axes.scatter([p for p, _ in targets], [t for _, t in targets], marker="_", s=900,
                     color="tab:red", zorder=3)
    lowest = max(0.0, min(values + [t for _, t in targets]) - 10.0)
    for position, run in zip(positions, runs):  # inside the bar, clear of CI and target
        axes.text(position, lowest + 1.0, f"{run.accuracy_percent:.2f}", ha="center",
                  va="bottom", fontsize=9, color="white", fontweight="bold")
    axes.set_xticks(positions)
    axes.set_xticklabels([run.name for run in runs], rotation=20, ha="right", fontsize=8)
    axes.set_ylim(lowest, 100.0)
    axes.set_ylabel("test accuracy (%)")
    axes.set_title("Final accuracy (error bars: 95 % CI"
                   + ("; red: target)" if targets else ")"), fontsize=11)
    axes.grid(True, axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def report_markdown(runs, output, plots_dir):
    """The generated block: the table and links to the plots (relative to `output`)."""
    relative = os.path.relpath(plots_dir, os.path.dirname(os.path.abspath(output)) or ".")
    link = lambda name: os.path.join(relative, name).replace(os.sep, "/")  # noqa: E731
    lines = [BEGIN_MARKER,
             "<!-- Generated by trainers/report.py; edits between these markers are lost. -->",
             ""]
    if _classification(runs):
        lines += [markdown_table(runs),
                  "Accuracy: mean query accuracy over the evaluation episodes; 95 % CI: "
                  "1.96 × std / √episodes (per-episode accuracies); steps: the meta-step of "
                  "the evaluated (best-validation) checkpoint.", "",
                  f"![validation accuracy]({link(VALIDATION_PLOT)})", "",
                  f"![final accuracy]({link(FINAL_PLOT)})", ""]
    if any(run.regression for run in runs):
        lines += [regression_table(runs),
                  "MSE: mean squared error on each test task's query points after adapting "
                  "to its support points (inner steps), averaged over the tasks; 95 % CI: "
                  "1.96 × std / √tasks; steps: the meta-step of the evaluated "
                  "(lowest validation MSE) checkpoint.", ""]
    return "\n".join(lines + [END_MARKER]) + "\n"


def _classification(runs):
    return [run for run in runs if not run.regression]


def write_report(model_dirs, output, plots_dir, split=None, title="Results"):
    """Reads `model_dirs` and writes the Markdown `output` and the plots.

    Returns:
        The `RunResult`s, in the order given.

    Raises:
        ReportError: when a model_dir cannot be read (names the path).
    """
    runs = [load_run(model_dir, split) for model_dir in model_dirs]
    classification = _classification(runs)
    if classification:  # the plots are of accuracies
        os.makedirs(plots_dir, exist_ok=True)
        plot_validation(classification, os.path.join(plots_dir, VALIDATION_PLOT))
        plot_final(classification, os.path.join(plots_dir, FINAL_PLOT))
    write_block(output, report_markdown(runs, output, plots_dir), BEGIN_MARKER, END_MARKER,
                title)
    return runs


def write_block(output, block, begin, end, title):
    """Writes `block` (which starts with `begin` and ends with `end`) into `output`.

    Only the text between the markers is replaced when `output` holds them;
    a file without them gets the block appended; a missing file is created
    with `# title`.
    """
    existing = None
    if os.path.isfile(output):
        with open(output) as file:
            existing = file.read()
    if existing and begin in existing and end in existing:
        before = existing[:existing.index(begin)]
        after = existing[existing.index(end) + len(end):]
        text = before + block.rstrip("\n") + after
    elif existing:
        text = existing.rstrip("\n") + "\n\n" + block
    else:
        text = f"# {title}\n\n" + block
    directory = os.path.dirname(os.path.abspath(output))
    os.makedirs(directory, exist_ok=True)
    with open(output, "w") as file:
        file.write(text)


def cli(argv=None):
    """The program on `argv` (default: `sys.argv[1:]`); returns its exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dirs", nargs="+", required=True,
                        help="run folders written by mgaug-train")
    parser.add_argument("--output", required=True, help="the Markdown file to write")
    parser.add_argument("--plots_dir", required=True, help="folder for the PNG plots")
    parser.add_argument("--split", default=None,
                        help="read eval_<split>.json (default: eval_test.json or the only one); "
                        "a cross-domain test (--test_dataset) is test_<dataset>, e.g. "
                        "test_miniimagenet")
    parser.add_argument("--title", default="Results", help="heading of a new output file")
    args = parser.parse_args(argv)
    try:
        runs = write_report(args.model_dirs, args.output, args.plots_dir, args.split,
                            args.title)
    except ReportError as error:
        print(f"{quiet.program_name()}: error: {error}", file=sys.stderr)
        return 2
    for run in runs:
        if run.regression:
            print(f"{run.name}: MSE {float(run.evaluation['mean_mse']):.4f} ± "
                  f"{float(run.evaluation['ci95']):.4f} ({run.evaluation['num_episodes']} "
                  "tasks)")
        else:
            print(f"{run.name}: {run.accuracy_percent:.2f} % ± {run.ci95_percent:.2f} % "
                  f"({run.evaluation['num_episodes']} episodes)")
    if _classification(runs):
        print(f"wrote {args.output} and {args.plots_dir}/{{{VALIDATION_PLOT},{FINAL_PLOT}}}")
    else:
        print(f"wrote {args.output} (no plots: regression runs only)")
    return 0


def main():
    """`mgaug-report`: runs the program on `sys.argv`; exits with its status."""
    quiet.configure()
    sys.exit(cli(sys.argv[1:]))


if __name__ == "__main__":
    main()

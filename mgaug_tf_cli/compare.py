r"""Compares arms of a seeded experiment (e.g. MGAug vs its baseline), with significance.

Runs are grouped into arms by their folder name without a trailing
`_seed<N>` (`catfish_seed0`, `catfish_seed1` -> arm `catfish`). Every arm is
compared with the baseline arm two ways:

* across seeds: Welch's t-test on the per-seed test accuracies (few seeds,
  so only large effects can show);
* across episodes: the evaluation episodes are the same for every run
  (fixed `--eval_seed`), so each episode's accuracy is averaged over an
  arm's seeds and the arms are compared with a paired t-test over the
  episodes (it removes the episode-difficulty noise, not the seed noise).

    mgaug-compare --model_dirs /tmp/runs/compare/* --baseline=baseline \
        --output docs/results.md --plot docs/plots/mgaug_comparison.png

(`python trainers/compare.py ...` in a checkout.)

The table and plot go between `<!-- compare:begin -->` and
`<!-- compare:end -->` in `--output` (the rest of the file is kept).
"""

import argparse
import math
import os
import re
import sys

import numpy as np
from scipy import stats

from mgaug_tf_cli import quiet, report

BEGIN_MARKER = "<!-- compare:begin -->"
END_MARKER = "<!-- compare:end -->"
SEED_SUFFIX = re.compile(r"_seed\d+$")


def student_t_two_sided_p(t, dof):
    """Two-sided p-value of Student's t with `dof` degrees of freedom (`scipy.stats.t`)."""
    t = abs(float(t))
    if not math.isfinite(t):
        return 0.0
    return float(2.0 * stats.t.sf(t, dof))


def welch_t_test(a, b):
    """`(t, dof, p)` of Welch's unequal-variance t-test of mean(a) - mean(b).

    `scipy.stats.ttest_ind(equal_var=False)`; identical samples with no spread
    (where scipy returns NaN) give p = 1, different ones p = 0.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.var(ddof=1) + b.var(ddof=1) == 0:
        return math.inf, len(a) + len(b) - 2, 0.0 if a.mean() != b.mean() else 1.0
    result = stats.ttest_ind(a, b, equal_var=False)
    return float(result.statistic), float(result.df), float(result.pvalue)


def paired_t_test(a, b):
    """`(t, dof, p)` of the paired t-test of mean(a - b) (`scipy.stats.ttest_rel`)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    differences = a - b
    if differences.std(ddof=1) == 0:
        return math.inf, len(differences) - 1, 0.0 if differences.mean() != 0 else 1.0
    result = stats.ttest_rel(a, b)
    return float(result.statistic), float(result.df), float(result.pvalue)


def group_arms(runs):
    """`{arm: [RunResult]}` in first-seen order."""
    arms = {}
    for run in runs:
        arms.setdefault(SEED_SUFFIX.sub("", run.name), []).append(run)
    return arms


def check_comparable(arms):
    """Raises `ReportError` unless all runs share their evaluation episodes."""
    keys = {(run.evaluation.get("dataset"), run.evaluation.get("n_way"),
             run.evaluation.get("k_shot"), run.evaluation.get("k_query"),
             run.evaluation.get("eval_seed"), run.evaluation.get("num_episodes"))
            for members in arms.values() for run in members}
    if len(keys) != 1:
        raise report.ReportError(
            "the runs were evaluated on different episodes (dataset, n_way, k_shot, k_query, "
            f"eval_seed, episodes): {sorted(map(str, keys))}; a paired comparison needs the same")
    for members in arms.values():
        for run in members:
            if run.evaluation.get("objective") == "regression":
                raise report.ReportError(
                    f"{run.model_dir} is a regression run (its evaluation gives MSE): "
                    "mgaug-compare compares classification accuracies; mgaug-report tables "
                    "regression runs' MSE")
            if not run.evaluation.get("per_episode_accuracy"):
                raise report.ReportError(f"{run.model_dir}: its evaluation JSON has no "
                                         "per_episode_accuracy")


def compare(runs, baseline):
    """Rows `{arm, seeds, mean, std, ci, delta, welch_p, paired_p}` (accuracies in %)."""
    arms = group_arms(runs)
    if baseline not in arms:
        raise report.ReportError(f"no runs of the baseline arm {baseline!r}; arms: "
                                 f"{', '.join(arms)}")
    check_comparable(arms)

    def seed_accuracies(members):
        return np.array([100 * run.evaluation["mean_accuracy"] for run in members])

    def episode_accuracies(members):
        return 100 * np.mean([run.evaluation["per_episode_accuracy"] for run in members], axis=0)

    base_seeds = seed_accuracies(arms[baseline])
    base_episodes = episode_accuracies(arms[baseline])
    rows = []
    for arm, members in arms.items():
        seeds = seed_accuracies(members)
        row = {"arm": arm, "seeds": len(members), "mean": seeds.mean(),
               "std": seeds.std(ddof=1) if len(seeds) > 1 else float("nan"),
               "ci": float(np.mean([100 * run.evaluation["ci95"] for run in members])),
               "steps": sorted({run.evaluation.get("step") for run in members}),
               "per_seed": seeds}
        if arm != baseline:
            row["delta"] = seeds.mean() - base_seeds.mean()
            row["welch_p"] = (welch_t_test(seeds, base_seeds)[2]
                              if len(seeds) > 1 and len(base_seeds) > 1 else float("nan"))
            row["paired_p"] = paired_t_test(episode_accuracies(members), base_episodes)[2]
        rows.append(row)
    return rows


def format_p(p):
    """A p-value for a table; tiny ones as a bound (more digits mean nothing here)."""
    return "< 1e-12" if p < 1e-12 else f"{p:.3g}"


def comparison_markdown(rows, baseline, plot_link, alpha=0.05, begin=BEGIN_MARKER,
                        end=END_MARKER, heading=None, plot_alt="MGAug comparison"):
    """The comparison table as a Markdown block between `begin` and `end`.

    `heading` (optional) is a line above the table, e.g. a study setting's name.
    """
    header = ("| arm | seeds | per-seed test accuracy (%) | mean (%) | std over seeds | "
              f"mean 95 % CI | Δ vs {baseline} | p (Welch, seeds) | p (paired, episodes) | "
              f"significant at {alpha} |")
    lines = [begin,
             "<!-- Generated by trainers/compare.py; edits between these markers are lost. -->",
             ""] + ([heading, ""] if heading else []) + [header, "|" + "---|" * header.count(" | ") + "---|"]
    for row in rows:
        seeds = ", ".join(f"{value:.2f}" for value in row["per_seed"])
        if row["arm"] == baseline:
            tail = "– | – | – | (baseline) |"
        else:
            both = row["welch_p"] < alpha and row["paired_p"] < alpha
            verdict = ("yes, " + ("better" if row["delta"] > 0 else "worse")) if both else (
                "episodes only" if row["paired_p"] < alpha else "no")
            tail = (f"{row['delta']:+.2f} | {row['welch_p']:.3f} | "
                    f"{format_p(row['paired_p'])} | {verdict} |")
        lines.append(f"| {row['arm']} | {row['seeds']} | {seeds} | {row['mean']:.2f} | "
                     f"{row['std']:.2f} | ± {row['ci']:.2f} | {tail}")
    lines += ["", "Significant: both tests below the threshold; \"episodes only\": the paired "
              "test over the shared evaluation episodes is, the test over seeds is not (the "
              "difference may be seed noise).", "", f"![{plot_alt}]({plot_link})", "",
              end]
    return "\n".join(lines) + "\n"


def plot_comparison(rows, path):
    """Mean test accuracy per arm (error bars: std over seeds; dots: each seed)."""
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt  # pylint: disable=import-outside-toplevel

    figure, axes = plt.subplots(figsize=(max(4.0, 1.3 * len(rows) + 2), 4.0), dpi=100)
    positions = np.arange(len(rows))
    means = [row["mean"] for row in rows]
    axes.bar(positions, means, yerr=[0 if math.isnan(row["std"]) else row["std"]
                                     for row in rows],
             capsize=6, color="tab:blue", alpha=0.7)
    for position, row in zip(positions, rows):
        axes.scatter(np.full(len(row["per_seed"]), position), row["per_seed"], color="black",
                     s=12, zorder=3)
    low = min(min(row["per_seed"]) for row in rows)
    high = max(max(row["per_seed"]) for row in rows)
    margin = max(1.0, 0.5 * (high - low))
    axes.set_ylim(low - margin, min(100.0, high + margin))
    axes.set_xticks(positions)
    axes.set_xticklabels([row["arm"] for row in rows], rotation=15, ha="right")
    axes.set_ylabel("test accuracy (%)")
    axes.set_title("Mean over seeds (bars: std; dots: seeds)", fontsize=11)
    axes.grid(True, axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def plot_arm_curves(arms, path, title=None):
    """Validation accuracy (%) vs meta-step: each arm's mean over seeds, min-max shaded.

    Args:
        arms: `{arm: [report.RunResult]}` (e.g. `group_arms(runs)`); seeds of
            an arm are averaged at the steps all of them validated.
        path: The PNG to write.
        title: Optional plot title.
    """
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt  # pylint: disable=import-outside-toplevel

    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=100)
    for arm, members in arms.items():
        curves = [{step: 100 * value for step, value, _ in run.validation} for run in members]
        steps = sorted(set.intersection(*(set(curve) for curve in curves))) if curves else []
        if not steps:
            continue
        values = np.array([[curve[step] for step in steps] for curve in curves])
        line, = axes.plot(steps, values.mean(axis=0), marker="o", markersize=3,
                          label=f"{arm} ({len(members)} seed{'s' if len(members) > 1 else ''})")
        axes.fill_between(steps, values.min(axis=0), values.max(axis=0),
                          color=line.get_color(), alpha=0.15, linewidth=0)
    axes.set_xlabel("meta-step")
    axes.set_ylabel("validation accuracy (%)")
    axes.set_title((title + ": " if title else "") + "mean over seeds (shaded: min-max)",
                   fontsize=11)
    axes.grid(True, alpha=0.3)
    handles, _ = axes.get_legend_handles_labels()
    if handles:
        axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def cli(argv=None):
    """The program on `argv` (default: `sys.argv[1:]`); returns its exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dirs", nargs="+", required=True)
    parser.add_argument("--baseline", required=True, help="the baseline arm's name")
    parser.add_argument("--output", required=True, help="the Markdown file to write into")
    parser.add_argument("--plot", required=True, help="the PNG to write")
    parser.add_argument("--split", default=None)
    parser.add_argument("--alpha", type=float, default=0.05)
    args = parser.parse_args(argv)
    try:
        runs = [report.load_run(model_dir, args.split) for model_dir in args.model_dirs
                if os.path.isdir(model_dir)]
        rows = compare(runs, args.baseline)
    except report.ReportError as error:
        print(f"{quiet.program_name()}: error: {error}", file=sys.stderr)
        return 2
    os.makedirs(os.path.dirname(os.path.abspath(args.plot)), exist_ok=True)
    plot_comparison(rows, args.plot)
    link = os.path.relpath(args.plot, os.path.dirname(os.path.abspath(args.output)))
    report.write_block(args.output, comparison_markdown(rows, args.baseline,
                                                        link.replace(os.sep, "/"), args.alpha),
                       BEGIN_MARKER, END_MARKER, "Comparison")
    for row in rows:
        extra = "" if "delta" not in row else (
            f", delta {row['delta']:+.2f}, p(seeds) {row['welch_p']:.3f}, "
            f"p(episodes) {format_p(row['paired_p'])}")
        print(f"{row['arm']}: {row['mean']:.2f} % over {row['seeds']} seed(s){extra}")
    return 0


def main():
    """`mgaug-compare`: runs the program on `sys.argv`; exits with its status."""
    quiet.configure()
    sys.exit(cli(sys.argv[1:]))


if __name__ == "__main__":
    main()

r"""Runs a seeded multi-arm study (e.g. MGAug under task scarcity) and reports it.

A study is a flagfile (`--study`) whose lines name its settings and arms:

    setting=omniglot_c50_protonet configs/study/omniglot_protonet.cfg --max_train_classes=50
    arm=baseline
    arm=catfish --flagfile=configs/study/catfish_{config}.cfg
    seeds=omniglot_c50_protonet 0 1 2 3 4
    seeds=* 0 1 2

`{config}` in an arm's flags is the setting's config name without folder and
`.cfg` (`omniglot_protonet` above), so one arm can carry the MGAug setting
that belongs to each learner and image size.

Every (setting, arm, seed) is one `mgaug-train` run (`python -m
mgaug_tf_cli.train` with this Python, started in the current folder, which
the configs' relative paths such as `--data_dir` are read from) in
`<root>/<setting>/<arm>_seed<N>` (log: `<root>/<setting>/<arm>_seed<N>.log`).
Finished runs (with `eval_test.json`) are skipped and unfinished ones resume
from their checkpoints, so the command can be stopped and rerun. Up to
`--parallel` runs go side by side, run i pinned to core i % cores with
`taskset` where it exists (one core each: the convolutions of this project's
shapes do not scale to two cores as well as two runs do).

When every run of a setting has finished, its comparison (per-seed test
accuracies, mean +- std, Welch's t over seeds and a paired t over the shared
test episodes, `mgaug-compare`) and a plot of every arm's validation
curve go into `--output` between `<!-- study:<setting>:begin/end -->`
markers, and `<root>/timing.json` records each run's wall time.

    mgaug-study --study=configs/study/scarcity.study \
        --root=/tmp/runs/scarcity --output=docs/results.md --plots_dir=docs/plots
    mgaug-study --study=configs/study/scarcity.study --quick ...  # a smoke test

(`python trainers/study.py ...` in a checkout.) A relative `--study` path
that does not exist in the current folder is looked up in the installed
package's configs (`configs/study/scarcity.study` names the packaged one).

`--quick` runs every setting and arm with one seed for a few steps on a few
episodes: it checks the study end to end, its numbers mean nothing.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import mgaug_tf_cli
from mgaug_tf_cli import compare, quiet, report

QUICK_FLAGS = ("--train_steps=2", "--eval_every=1", "--val_episodes=2", "--eval_episodes=4",
               "--checkpoint_every=1", "--summary_every=1")


class StudyError(Exception):
    """The study file is malformed or a run failed."""


def study_path(path):
    """Where `--study=path` is: as given, else (relative) in the installed package's folder.

    The package holds `configs/` (`configs/study/scarcity.study`), so the
    studies shipped with it are found by the same name from any folder.
    """
    path = os.fspath(path)
    if os.path.isabs(path) or os.path.exists(path):
        return path
    return mgaug_tf_cli.packaged_config(path) or path


def parse_study(path):
    """`(settings, arms, seeds)` of a study file.

    Returns:
        `settings`: `{name: [mgaug-train arguments]}` in file order; `arms`:
        `{name: [arguments]}`; `seeds`: `{setting name or "*": [int]}`.

    Raises:
        StudyError: naming the file and line of a malformed entry.
    """
    settings, arms, seeds = {}, {}, {}
    path = study_path(path)
    try:
        with open(path) as file:
            lines = file.read().splitlines()
    except OSError as error:
        raise StudyError(f"cannot read --study={path}: {error}") from None
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, rest = line.partition("=")
        words = rest.split()
        where = f"{path}:{number}"
        if key not in ("setting", "arm", "seeds") or not words:
            raise StudyError(f"{where}: expected 'setting=NAME CONFIG [FLAGS]', 'arm=NAME "
                             f"[FLAGS]' or 'seeds=SETTING|* N [N ...]'; got {line!r}")
        if key == "setting":
            if len(words) < 2:
                raise StudyError(f"{where}: a setting needs a name and a config file")
            settings[words[0]] = [f"--flagfile={words[1]}"] + words[2:]
        elif key == "arm":
            arms[words[0]] = words[1:]
        else:
            try:
                seeds[words[0]] = [int(word) for word in words[1:]]
            except ValueError:
                raise StudyError(f"{where}: seeds must be integers; got {line!r}") from None
    if not settings or not arms:
        raise StudyError(f"{path} names no settings or no arms")
    for setting in settings:
        if not seeds.get(setting, seeds.get("*")):
            raise StudyError(f"{path}: no seeds for setting {setting!r} (add 'seeds={setting} "
                             "0 1 2' or 'seeds=* ...')")
    return settings, arms, seeds


def plan_runs(settings, arms, seeds, root, only_settings=None, only_arms=None, quick=False,
              extra_flags=()):
    """The runs as dicts `{setting, arm, seed, model_dir, args}`, seeds outermost.

    Seeds outermost: a study stopped early has every arm at equally many seeds.
    `extra_flags` go last on every run's command line (e.g. another `--data_dir`).
    """
    runs = []
    chosen = [name for name in settings if not only_settings or name in only_settings]
    unknown = sorted(set(only_settings or ()) - set(settings)) + sorted(
        set(only_arms or ()) - set(arms))
    if unknown:
        raise StudyError(f"unknown setting or arm {unknown}; the study has settings "
                         f"{list(settings)} and arms {list(arms)}")
    by_setting = {name: (seeds.get(name) or seeds["*"])[:1 if quick else None]
                  for name in chosen}
    for index in range(max(len(values) for values in by_setting.values())):
        for setting in chosen:
            if index >= len(by_setting[setting]):
                continue
            seed = by_setting[setting][index]
            for arm, arm_args in arms.items():
                if only_arms and arm not in only_arms:
                    continue
                model_dir = os.path.join(root, setting, f"{arm}_seed{seed}")
                config = os.path.splitext(os.path.basename(
                    settings[setting][0].split("=", 1)[1]))[0]
                arm_args = [arg.replace("{config}", config) for arg in arm_args]
                args = settings[setting] + arm_args + [f"--seed={seed}",
                                                       f"--model_dir={model_dir}"]
                runs.append({"setting": setting, "arm": arm, "seed": seed,
                             "model_dir": model_dir,
                             "args": args + (list(QUICK_FLAGS) if quick else [])
                             + list(extra_flags)})
    return runs


def finished(run):
    return os.path.isfile(os.path.join(run["model_dir"], "eval_test.json"))


def execute(runs, parallel, timing_path, python=sys.executable):
    """Runs the unfinished `runs`, `parallel` at a time; records wall times.

    Raises:
        StudyError: a run exited non-zero (names its log); the others finish first.
    """
    timing = {}
    if os.path.isfile(timing_path):
        with open(timing_path) as file:
            timing = json.load(file)
    pending = [run for run in runs if not finished(run)]
    cores = os.cpu_count() or 1
    pin = shutil.which("taskset") is not None and parallel > 1
    active, failures, slot_free = {}, [], list(range(parallel))
    while pending or active:
        while pending and slot_free:
            run, slot = pending.pop(0), slot_free.pop(0)
            os.makedirs(os.path.dirname(run["model_dir"]), exist_ok=True)
            command = [python, "-m", "mgaug_tf_cli.train"] + run["args"]
            if pin:
                command = ["taskset", "-c", str(slot % cores)] + command
            log = open(run["model_dir"] + ".log", "a")  # pylint: disable=consider-using-with
            print(f"study: start {run['setting']}/{run['arm']}_seed{run['seed']}", flush=True)
            process = subprocess.Popen(command, stdout=log,  # pylint: disable=consider-using-with
                                       stderr=subprocess.STDOUT, env=quiet.child_environment())
            active[process] = (run, slot, log, time.time())
        time.sleep(0.2)
        for process in [p for p in active if p.poll() is not None]:
            run, slot, log, started = active.pop(process)
            log.close()
            slot_free.append(slot)
            key = f"{run['setting']}/{run['arm']}_seed{run['seed']}"
            seconds = time.time() - started
            timing[key] = timing.get(key, 0.0) + seconds  # resumed runs add up
            with open(timing_path, "w") as file:
                json.dump(timing, file, indent=1, sort_keys=True)
            status = "done" if process.returncode == 0 else f"FAILED ({process.returncode})"
            print(f"study: {status} {key} in {seconds:.0f} s", flush=True)
            if process.returncode != 0:
                failures.append(f"{key} (see {run['model_dir']}.log)")
    if failures:
        raise StudyError("runs failed: " + "; ".join(failures))
    return timing


def markers(setting):
    return f"<!-- study:{setting}:begin -->", f"<!-- study:{setting}:end -->"


def setting_block(setting, rows, baseline, plot_link, timing, runs):
    """Markdown of one setting: the comparison table, wall times and the curves."""
    begin, end = markers(setting)
    table = compare.comparison_markdown(rows, baseline, plot_link, begin=begin, end=end,
                                        heading=f"**{setting}**",
                                        plot_alt=f"{setting}: validation accuracy per arm")
    seconds = {}
    for run in runs:
        key = f"{run['setting']}/{run['arm']}_seed{run['seed']}"
        if key in timing:
            seconds.setdefault(run["arm"], []).append(timing[key])
    if seconds:
        # Medians: robust to a run slowed by other work on the machine.
        median = {arm: statistics.median(values) for arm, values in seconds.items()}
        base = median.get(baseline)
        parts = [f"{arm} {median[arm] / 60:.1f} min ({min(values) / 60:.1f}-"
                 f"{max(values) / 60:.1f})"
                 + (f", {median[arm] / base:.2f}x" if base and arm != baseline else "")
                 for arm, values in seconds.items()]
        table = table.replace(f"\n{end}", f"\nWall time per run, training and evaluation (median "
                              f"over seeds, min-max; ratio of medians to {baseline}): "
                              f"{'; '.join(parts)}.\n\n{end}")
    return table


def report_settings(runs, output, plots_dir, timing, baseline):
    """Writes each fully finished setting's block and plots; returns the settings written."""
    written = []
    for setting in dict.fromkeys(run["setting"] for run in runs):
        members = [run for run in runs if run["setting"] == setting]
        if not all(finished(run) for run in members):
            continue
        results = [report.load_run(run["model_dir"]) for run in members]
        rows = compare.compare(results, baseline)
        os.makedirs(plots_dir, exist_ok=True)
        curves = os.path.join(plots_dir, f"study_{setting}_validation.png")
        compare.plot_arm_curves(compare.group_arms(results), curves, title=setting)
        link = os.path.relpath(curves, os.path.dirname(os.path.abspath(output)))
        block = setting_block(setting, rows, baseline, link.replace(os.sep, "/"), timing,
                              members)
        report.write_block(output, block, *markers(setting), "Results")
        written.append(setting)
    return written


def cli(argv=None):
    """The program on `argv` (default: `sys.argv[1:]`); returns its exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", required=True, help="the study file (settings, arms, seeds)")
    parser.add_argument("--root", required=True, help="folder of the runs (resumable)")
    parser.add_argument("--output", required=True, help="Markdown file for the tables")
    parser.add_argument("--plots_dir", required=True, help="folder for the curve plots")
    parser.add_argument("--settings", nargs="*", help="only these settings")
    parser.add_argument("--arms", nargs="*", help="only these arms")
    parser.add_argument("--baseline", default="baseline", help="the arm compared against")
    parser.add_argument("--parallel", type=int, default=2, help="runs side by side")
    parser.add_argument("--run_flag", action="append", default=[],
                        help="a flag added to every run, repeatable; write it with '=', e.g. "
                             "--run_flag=--data_dir=/data/omniglot")
    parser.add_argument("--quick", action="store_true",
                        help="one seed, a few steps and episodes: a smoke test of the study")
    args = parser.parse_args(argv)
    try:
        settings, arms, seeds = parse_study(args.study)
        if args.baseline not in arms:
            raise StudyError(f"--baseline={args.baseline} is not an arm of {args.study} "
                             f"({', '.join(arms)})")
        runs = plan_runs(settings, arms, seeds, args.root, args.settings, args.arms, args.quick,
                         args.run_flag)
        print(f"study: {len(runs)} runs, {sum(finished(run) for run in runs)} finished earlier",
              flush=True)
        os.makedirs(args.root, exist_ok=True)
        timing = execute(runs, max(1, args.parallel), os.path.join(args.root, "timing.json"))
        written = report_settings(runs, args.output, args.plots_dir, timing, args.baseline)
    except (StudyError, report.ReportError) as error:
        print(f"{quiet.program_name()}: error: {error}", file=sys.stderr)
        return 2
    print(f"study: wrote {', '.join(written)} into {args.output}")
    return 0


def main():
    """`mgaug-study`: runs the program on `sys.argv`; exits with its status."""
    quiet.configure()
    sys.exit(cli(sys.argv[1:]))


if __name__ == "__main__":
    main()

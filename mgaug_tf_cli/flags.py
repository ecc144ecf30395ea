"""The flags of `mgaug-train`, derived from `mgaug_tf.config`, and the flagfile reader.

Every field of `mgaug_tf.config.ExperimentConfig` is one flag, named in the
field's metadata; `config_from_flags` is the only function that reads this
module's flags (the program also reads absl's own `--verbosity`). Flags check
their form only (types, enum names, integer lists, the dataset name, and the
training loop's counts, which no constructor checks); values are validated
by the library constructors, and `describe` names the flags behind a refused
config field.

Flags come from the command line and from `--flagfile` config files (one
`--name=value` per line; lines starting with `#` or `//` are comments; a
later value overrides an earlier one, so command-line flags given after
`--flagfile` override the file).
"""

import os

from absl import flags

import mgaug_tf_cli
from mgaug_tf import config as config_lib

# --help groups: one per config section, in ExperimentConfig's order.
GROUP_TITLES = {"data": "data", "episodes": "episodes", "backbone": "model: backbone",
                "learner": "model: learner", "mgaug": "MGAug", "optimizer": "optimizer",
                "trainer": "trainer", "runtime": "runtime"}
HELP_ARGUMENTS = ("--help", "-help", "-h", "-?", "--helpshort", "-helpshort")
HELPFULL_ARGUMENTS = ("--helpfull", "-helpfull")
# absl's own flags that --helpfull lists besides the config's (the program's --verbosity, ...).
ABSL_MODULES = ("absl.app", "absl.logging")


def check_dataset(name):
    """Refuses an unknown --dataset name, listing the known ones (imports TensorFlow).

    Raises:
        flags.ValidationError: Naming `--dataset=name`.
    """
    from mgaug_tf.data.load import check_dataset_name  # pylint: disable=import-outside-toplevel
    try:
        check_dataset_name(name)
    except ValueError as error:
        raise flags.ValidationError(f"--dataset={name}: {error}") from None
    return True


def _integer_list(flag):
    def check(values):
        try:
            [int(value) for value in values]  # pylint: disable=expression-not-assigned
        except ValueError:
            raise flags.ValidationError(
                f"--{flag}={','.join(values)}: expected comma-separated integers.") from None
        return True
    return check


def define_flags(flag_values=flags.FLAGS, check_dataset_name=True):
    """Defines one flag per `ExperimentConfig` field on `flag_values` (once).

    Args:
        flag_values: The `flags.FlagValues` to define them on.
        check_dataset_name: Check `--dataset` when the flags are parsed. The
            dataset table imports TensorFlow, so a program that checks the
            rest of its config first passes False and calls `check_dataset`
            itself.
    """
    if next(iter(config_lib.FIELDS_BY_FLAG)) in flag_values:
        return
    for spec in config_lib.FIELDS.values():
        kind = spec.base_type
        args = (spec.flag, spec.default, spec.doc)
        if kind is bool:
            flags.DEFINE_bool(*args, flag_values=flag_values)
        elif spec.choices is not None:
            flags.DEFINE_enum(spec.flag, spec.default, list(spec.choices), spec.doc,
                              flag_values=flag_values)
        elif kind is int:
            flags.DEFINE_integer(*args, lower_bound=spec.lower_bound, flag_values=flag_values)
        elif kind is float:
            flags.DEFINE_float(*args, lower_bound=spec.lower_bound, flag_values=flag_values)
        elif spec.is_list:
            flags.DEFINE_list(spec.flag, [str(value) for value in spec.default], spec.doc,
                              flag_values=flag_values)
            flags.register_validator(spec.flag, _integer_list(spec.flag),
                                     flag_values=flag_values)
        else:
            flags.DEFINE_string(*args, flag_values=flag_values)
    if check_dataset_name:
        flags.register_validator("dataset", check_dataset, flag_values=flag_values)


def config_from_flags(flag_values=flags.FLAGS, base=None):
    """The `ExperimentConfig` that parsed flags describe: the only reader of flag values.

    Args:
        flag_values: Parsed flags defined by `define_flags`.
        base: An `ExperimentConfig` whose values the flags given on the command
            line replace (a program with defaults of its own, such as the
            benchmark); None: every field from its flag, defaults included.
    """
    values = {}
    for spec in config_lib.FIELDS.values():
        if base is not None and not flag_values[spec.flag].present:
            continue
        value = flag_values[spec.flag].value
        if spec.is_list:
            value = tuple(int(item) for item in value)
        values[spec.path] = value
    return config_lib.override(config_lib.ExperimentConfig() if base is None else base, values)


def parse_config(argv):
    """`config_from_flags` of `argv` (flags only, no program name) on fresh flag values.

    For tests and scripts: the process's global flags are left untouched.
    `--flagfile` arguments are expanded as the program does.

    Raises:
        flags.Error: A flag absl refuses (naming it).
        FlagfileError: A flagfile that cannot be found or read.
    """
    flag_values = flags.FlagValues()
    define_flags(flag_values)
    flag_values(["mgaug-train", *expand_flagfiles(list(argv))])
    return config_from_flags(flag_values)


# ------------------------------------------------------------ from a config
def flag_text(spec, value):
    """`--name=value` (`--name`/`--noname` for booleans) as a flagfile line; None for unset."""
    if value is None:
        return None
    if isinstance(value, bool):
        return f"--{spec.flag}" if value else f"--no{spec.flag}"
    if isinstance(value, tuple):
        return f"--{spec.flag}=" + ",".join(str(item) for item in value)
    return f"--{spec.flag}={value}"


def describe(paths, experiment):
    """The flags behind config `paths` with their values, e.g. "--keep_min=1.5 --keep_max=1"."""
    texts = []
    for path in paths:
        spec = config_lib.FIELDS[path]
        texts.append(flag_text(spec, config_lib.get(experiment, path)) or f"--{spec.flag} unset")
    return " ".join(texts)


def flagfile_text(experiment):
    """Every field of `experiment` as a flagfile that reproduces the run."""
    lines = ["# The resolved flags of this run (config.json holds the same); reproduce it with",
             "#   mgaug-train --flagfile=<this file>"]
    for spec in sorted(config_lib.FIELDS.values(), key=lambda item: item.flag):
        line = flag_text(spec, config_lib.get(experiment, spec.path))
        if line is not None:
            lines.append(line)
    return "\n".join(lines) + "\n"


def flag_dict(experiment):
    """`{flag name: value}` of `experiment`, JSON-ready (tuples as lists).

    The form `eval_*.json` files record, which `mgaug-report` and
    `mgaug-compare` read.
    """
    values = {}
    for spec in config_lib.FIELDS.values():
        value = config_lib.get(experiment, spec.path)
        values[spec.flag] = list(value) if isinstance(value, tuple) else value
    return values


def _default_text(spec):
    """A flag's default as `--help` shows it, or None for no default."""
    default = spec.default
    if default is None or default == ():
        return None
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, tuple):
        return "'" + ",".join(str(item) for item in default) + "'"
    return f"'{default}'" if isinstance(default, str) else str(default)


def help_text(usage="", full=False):
    """`--help`: `usage`, then every flag grouped by its config section (from the config alone).

    `full` (`--helpfull`) adds absl's own flags (`--verbosity`, `--logtostderr`, ...).
    """
    lines = [usage.strip(), ""] if usage.strip() else []
    groups = {}
    for spec in config_lib.FIELDS.values():
        groups.setdefault(spec.section, []).append(spec)
    for section, specs in groups.items():
        lines.append(f"{GROUP_TITLES.get(section, section)}:")
        for spec in specs:
            boolean = spec.base_type is bool
            name = f"--[no]{spec.flag}" if boolean else f"--{spec.flag}"
            doc = spec.doc
            if spec.choices is not None:
                doc += " One of: " + ", ".join(map(str, spec.choices)) + "."
            lines.append(flags.text_wrap(f"{name}: {doc}", indent="      ",
                                         firstline_indent="  "))
            default = _default_text(spec)
            if default is not None:
                lines.append(f"      (default: {default})")
        lines.append("")
    if full:
        # absl's modules define their flags when imported; the help flags on request.
        from absl import app, logging  # pylint: disable=import-outside-toplevel,unused-import
        app.define_help_flags()
        for module in ABSL_MODULES:
            lines += [flags.FLAGS.module_help(module), ""]
    lines.append("--flagfile=FILE reads flags from FILE (one per line; configs/NAME.cfg is also "
                 "found in the installed package)" + ("." if full else "; --helpfull also lists "
                                                      "absl's own flags (--verbosity, logging)."))
    return "\n".join(lines)


def config_from_flagfile(path):
    """The `ExperimentConfig` of a run folder's `flags.cfg` (runs written before config.json).

    Lines naming flags that no longer exist (e.g. the removed `--novectorize`)
    are skipped: they cannot change the model.
    """
    known = {spec.flag for spec in config_lib.FIELDS.values()}
    kept = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line.startswith("--"):
                continue
            name = line[2:].split("=", 1)[0]
            if name in known or (name.startswith("no") and name[2:] in known):
                kept.append(line)
    return parse_config(kept)


# ------------------------------------------------------------ flagfiles
class FlagfileError(ValueError):
    """A --flagfile (or a file it includes) cannot be found or read."""


def _flagfile_path(name, including):
    """Where `--flagfile=name` points: tried in the order absl would, then beside the includer."""
    path = os.path.expanduser(name)
    if os.path.isabs(path):
        return path, [path]
    tried = [os.path.abspath(path)]
    if including is not None:
        # Relative to the current folder (absl's rule), else to the including
        # file's folder or one of its parents (configs/x.cfg including
        # configs/y.cfg from anywhere).
        folder = os.path.dirname(os.path.abspath(including))
        while True:
            tried.append(os.path.join(folder, path))
            parent = os.path.dirname(folder)
            if parent == folder:
                break
            folder = parent
    packaged = mgaug_tf_cli.packaged_config(path)
    if packaged is not None:
        tried.append(packaged)
    for candidate in tried:
        if os.path.isfile(candidate):
            return candidate, tried
    return None, tried


def expand_flagfiles(args, _including=None, _depth=0):
    """`args` with every `--flagfile=FILE` replaced by FILE's flags, recursively.

    FILE is read as absl reads flagfiles (one flag per line, `#` and `//`
    comments). A relative FILE is looked up in the current folder first (as
    absl does), for a file included by another config also beside the
    including file and in the folders above it, and `configs/NAME` also in
    the installed package's configs.

    Raises:
        FlagfileError: A FILE is not found (naming every place looked at and
            the including file) or includes itself.
    """
    expanded = []
    args = list(args)
    while args:
        arg = args.pop(0)
        if arg in ("--flagfile", "-flagfile") and args:  # the "--flagfile FILE" spelling
            arg = f"--flagfile={args.pop(0)}"
        if not (arg.startswith("--flagfile=") or arg.startswith("-flagfile=")):
            expanded.append(arg)
            continue
        name = arg.split("=", 1)[1]
        path, tried = _flagfile_path(name, _including)
        where = f" (included by {_including})" if _including else ""
        if path is None:
            raise FlagfileError(f"--flagfile={name}{where} not found; looked at "
                                + ", ".join(dict.fromkeys(tried)) + ".")
        if _depth > 20:
            raise FlagfileError(f"--flagfile={name}{where}: flagfiles include each other in a "
                                "loop.")
        try:
            with open(path, encoding="utf-8") as handle:
                lines = [line.strip() for line in handle]
        except OSError as error:
            raise FlagfileError(f"--flagfile={name}{where} cannot be read: {error}.") from None
        lines = [line for line in lines
                 if line and not line.startswith("#") and not line.startswith("//")]
        expanded.extend(expand_flagfiles(lines, path, _depth + 1))
    return expanded

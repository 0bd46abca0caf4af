"""The `rephraser` command: `rephraser <subcommand> [flags]`; `rephraser <subcommand> --help` lists the flags.

Each subcommand is one config dataclass (flags generated from it, `--config file.yaml` accepted) and
one function. Errors in the user's input print one line and exit 1; usage errors exit 2. A function may
return an int: the exit status (the trainer's 75 after a SIGTERM checkpoint).
"""

from __future__ import annotations

import importlib
import sys

from rephraser import __version__
from rephraser.config import build_parser, resolve
from rephraser.errors import RephraserError

# name -> (config class, function, one-line help), as "module:attribute". The config's module is light: `--help`
# and flag errors never import the function's module (torch, datasets, lm-eval), which runs only when the command does.
COMMANDS = {
    "tokenize": (
        "rephraser.data.tokenize:TokenizeConfig",
        "rephraser.data.tokenize:tokenize_file",
        "JSONL rows -> .tok/.msk/.idx token files",
    ),
    "train": (
        "rephraser.train.config:TrainConfig",
        "rephraser.train.loop:train",
        "fine-tune on token files (one process; multi-GPU: accelerate launch -m rephraser.train)",
    ),
    "rephrase": (
        "rephraser.rephrase.config:RephraseConfig",
        "rephraser.rephrase.run:rephrase",
        "make the rephrased twin of a benchmark or lm-eval task",
    ),
    "experiment": (
        "rephraser.experiment.config:ExperimentConfig",
        "rephraser.experiment.run:run_experiment",
        "a controlled contamination study: train, evaluate both parts, report",
    ),
    "detect scan": (
        "rephraser.detect.config:ScanConfig",
        "rephraser.detect.scan:detect_scan",
        "find rephrased test items in training data",
    ),
    "detect model": (
        "rephraser.detect.model.config:DetectModelConfig",
        "rephraser.detect.model.select:detect_model",
        "model-level contamination detectors (Min-K%++, zlib, ...), scored against known contamination",
    ),
    "detect f1": (
        "rephraser.detect.config:F1Config",
        "rephraser.detect.f1:detect_f1",
        "the study's detector F1 protocol on the LMSYS files",
    ),
    "demo": ("rephraser.demo:DemoConfig", "rephraser.demo:run_demo", "the offline end-to-end demo"),
    "lm-eval-hook": (
        "rephraser.lm_eval_plugin:HookConfig",
        "rephraser.lm_eval_plugin:install_hook",
        "let the plain `lm_eval` find rephraser (editable installs)",
    ),
}
DESCRIPTIONS = {
    "train": "Fine-tune a causal LM on token files in this process (CPU or one GPU). For several GPUs or nodes, "
    "launch the same trainer through accelerate, which owns the hardware: accelerate launch "
    '--config_file "$(python -m rephraser.configs)/accelerate/fsdp2_1node_8gpu.yaml" -m rephraser.train '
    "[these flags]",
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {spec[2]}" for name, spec in COMMANDS.items()]
    return (
        "usage: rephraser <command> [flags]   (rephraser <command> --help)\n       rephraser --version\n\n"
        "commands:\n" + "\n".join(lines)
    )


def _load(ref: str):
    module, _, attribute = ref.partition(":")
    return getattr(importlib.import_module(module), attribute)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        print(f"rephraser {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name == "detect" and rest and rest[0] in ("scan", "f1", "model"):  # two-word commands
        name, rest = f"detect {rest[0]}", rest[1:]
    if name not in COMMANDS:
        print(f"rephraser: unknown command {name!r}\n{_usage()}", file=sys.stderr)
        return 2
    config_ref, function_ref, _ = COMMANDS[name]
    config_cls = _load(config_ref)
    args = build_parser(config_cls, prog=f"rephraser {name}", description=DESCRIPTIONS.get(name)).parse_args(rest)
    try:
        config = resolve(config_cls, args)
        result = _load(function_ref)(config)
    except RephraserError as e:
        print(f"rephraser {name}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"rephraser {name}: interrupted", file=sys.stderr)
        return 130
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


if __name__ == "__main__":
    sys.exit(main())

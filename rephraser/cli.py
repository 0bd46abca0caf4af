"""The `rephraser` command: `rephraser <subcommand> [flags]`; `rephraser <subcommand> --help` lists the flags.

Each subcommand is one config dataclass (flags generated from it, `--config file.yaml` accepted) and
one function. Errors in the user's input print one line and exit 1; usage errors exit 2.
"""

from __future__ import annotations

import importlib
import sys

from rephraser.config import build_parser, resolve
from rephraser.errors import RephraserError

# name -> (module, config class, function, one-line help); imported only when that subcommand runs.
COMMANDS = {
    "tokenize": ("rephraser.data.tokenize", "TokenizeConfig", "tokenize_file", "JSONL rows -> .tok/.msk/.idx token files"),
    "demo": ("rephraser.demo", "DemoConfig", "run_demo", "the offline end-to-end demo"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {spec[3]}" for name, spec in COMMANDS.items()]
    return "usage: rephraser <command> [flags]   (rephraser <command> --help)\n\ncommands:\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"rephraser: unknown command {name!r}\n{_usage()}", file=sys.stderr)
        return 2
    module_name, config_name, function_name, _ = COMMANDS[name]
    module = importlib.import_module(module_name)
    config_cls = getattr(module, config_name)
    args = build_parser(config_cls, prog=f"rephraser {name}").parse_args(rest)
    try:
        getattr(module, function_name)(resolve(config_cls, args))
    except RephraserError as e:
        print(f"rephraser {name}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

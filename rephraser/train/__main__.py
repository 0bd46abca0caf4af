"""`python -m rephraser.train ...` and `accelerate launch -m rephraser.train ...`: the `rephraser train` command,
through the CLI's handling (a RephraserError is one line and exit 1, Ctrl-C exit 130, 75 after a SIGTERM save)."""

import sys

from rephraser.cli import main

sys.exit(main(["train", *sys.argv[1:]]))

"""`python -m rephraser.tasks --path`: the task folder, for lm-eval's --include_path (the explicit way to add
rephraser's tasks where the startup hook cannot run, e.g. Python 3.18's .pth rules, PEP 829)."""

import argparse

from rephraser.tasks import TASKS_DIR

parser = argparse.ArgumentParser(prog="python -m rephraser.tasks", description=__doc__)
parser.add_argument("--path", action="store_true", help="print the task folder (the default action)")
parser.parse_args()
print(TASKS_DIR)

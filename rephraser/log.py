"""rephraser's log lines: one handler on the "rephraser" logger, so messages show wherever we run.

    log = get_logger("rephraser.data")
    log.info("GSM-8K test: 1319 rows from %s", path)

Inside `lm_eval` (which configures only its own "lm_eval" logger) and in our own commands alike, INFO and
above go to stderr; REPHRASER_LOG_LEVEL=WARNING quiets them. A program that configures "rephraser" itself
(a handler already attached) is left alone.
"""

from __future__ import annotations

import logging
import os


def get_logger(name: str) -> logging.Logger:
    root = logging.getLogger("rephraser")
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(name)s] %(message)s", "%H:%M:%S"))
        root.addHandler(handler)
        root.setLevel(os.environ.get("REPHRASER_LOG_LEVEL", "INFO").upper())
        root.propagate = False
    return logging.getLogger(name)

"""The output directory of a detect command, checked before any work: `prepare_outputs(out, names, inputs)`.

    created = prepare_outputs(Path(cfg.out), ("results.json", "report.md"), [cfg.train])
    try: ... write the outputs atomically ...
    except BaseException: remove_dirs(created); raise

Refused with a one-line error, before the scan or the scoring starts: an --out that is an existing file, an
output name that is a directory, an output that would replace an input, a directory that cannot be created or
written. The directories it had to create are returned, so a failed run removes them (rephraser.atomic).
"""

from __future__ import annotations

import os
from pathlib import Path

from rephraser.atomic import make_dirs, remove_dirs, temp_beside
from rephraser.errors import InputError


def prepare_outputs(out: Path, names: tuple[str, ...], inputs: list[str | None]) -> list[Path]:
    """The output directory, made (its new directories returned, to remove on failure) and probed for writing
    before the work, as tokenize does: an --out that is a file, unwritable, or whose outputs would replace an
    input fails now, not after the scan."""
    if out.exists() and not out.is_dir():
        raise InputError(out, f"--out is an existing file: name a directory (the outputs {', '.join(names)} go in it)")
    for name in names:
        target = out / name
        if target.exists() and not target.is_file():
            raise InputError(target, "exists and is not a file: choose another --out")
        for given in filter(None, inputs):
            if target.exists() and Path(given).exists() and os.path.samefile(target, given):
                raise InputError(given, f"the output {target} would overwrite this input: choose another --out")
    try:
        created = make_dirs(out)
    except OSError as e:
        raise InputError(out, f"cannot create the output directory: {e.strerror or e}") from None
    try:
        temp_beside(out / names[0]).unlink()
    except OSError as e:
        remove_dirs(created)
        raise InputError(out, f"cannot write the outputs here: {e.strerror or e}") from None
    return created

"""`--backend code-ast`: offline, deterministic rewriting of Python programs (the study's code rephrase, no model).

    from rephraser.rephrase.codeast import rewrite_program, break_runs
    new = rewrite_program(program, variant=0)     # rewrite.py: names, loops, docstrings (behaviour kept)

rewrite.py (the rewrite and its variants), scope.py (which binding each name refers to, as the compiler does),
rename.py (renaming by binding), loops.py (for -> while where it cannot change behaviour), runbreak.py (breaking runs
of words still shared with the original), differential.py + inputs.py (original vs rewrite on the tests' inputs and
generated ones, in the sandbox: a rewrite is proposed only when they behave the same).
"""

from rephraser.rephrase.codeast.rewrite import VARIANTS, Rewrite, break_runs, rewrite_program, test_names

__all__ = ["VARIANTS", "Rewrite", "break_runs", "rewrite_program", "test_names"]

"""Only for what pyproject.toml cannot say: ship `rephraser-lm-eval.pth` at the site-packages root, so the
unmodified `lm_eval` command finds rephraser's tasks (see rephraser_lm_eval_hook.py). Wheels only: an
editable install does not carry it (use `pip install .`, as `make test` does)."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PTH = "rephraser-lm-eval.pth"


class BuildPyWithPth(build_py):
    def run(self):
        super().run()
        self.copy_file(PTH, str(Path(self.build_lib) / PTH), preserve_mode=False)

    def get_outputs(self, include_bytecode=True):
        return [*super().get_outputs(include_bytecode), str(Path(self.build_lib) / PTH)]


setup(cmdclass={"build_py": BuildPyWithPth})

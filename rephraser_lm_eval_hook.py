"""Make the unmodified `lm_eval` command find rephraser's tasks (installed as a .pth startup hook).

lm-eval 0.4.13 has no entry-point discovery. `rephraser-lm-eval.pth` imports this module at interpreter
start (a top-level module, so that `rephraser` itself is not imported until needed); it only adds a
meta-path finder (well under a millisecond) and does nothing else until
`lm_eval.tasks.manager` is imported. Then it wraps TaskManager.__init__ so that every TaskManager (the
CLI's, `lm_eval ls tasks`, simple_evaluate's) also indexes rephraser.tasks.TASKS_DIR. It stays quiet when
lm-eval discovers entry points itself, warns instead of crashing if lm-eval's internals moved, and is
switched off by REPHRASER_NO_LM_EVAL_HOOK=1.
"""

import os
import sys

TARGET = "lm_eval.tasks.manager"


class _Finder:
    """Meta-path finder: on TARGET, let the normal finders find it, then patch it after it executes."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != TARGET:
            return None
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _PatchingLoader(spec.loader)
        return spec


class _PatchingLoader:
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        from rephraser.lm_eval_plugin import patch_task_manager

        patch_task_manager(module)


def install() -> None:
    if os.environ.get("REPHRASER_NO_LM_EVAL_HOOK") or any(isinstance(f, _Finder) for f in sys.meta_path):
        return
    if TARGET in sys.modules:  # lm_eval was imported before us: patch it directly
        from rephraser.lm_eval_plugin import patch_task_manager

        patch_task_manager(sys.modules[TARGET])
        return
    sys.meta_path.insert(0, _Finder())


install()

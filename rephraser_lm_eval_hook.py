"""Make the unmodified `lm_eval` command find rephraser's tasks (installed as a .pth startup hook).

lm-eval 0.4.13 has no entry-point discovery. `rephraser-lm-eval.pth` imports this module at interpreter
start (a top-level module, so that `rephraser` itself is not imported until needed); it only adds a
meta-path finder (well under a millisecond) and does nothing else until
`lm_eval.tasks.manager` is imported; then it wraps TaskManager.__init__ so that every TaskManager (the
CLI's, `lm_eval ls tasks`, simple_evaluate's) also indexes rephraser.tasks.TASKS_DIR. Once `lm_eval.models`
has filled lm-eval's lazy model registry, it adds `rephraser-hf` and `rephraser-vllm` as lazy entries (adding
them earlier would leave the registry non-empty, so lm-eval would never load its built-in models). It stays quiet when
lm-eval discovers entry points itself, warns instead of crashing if lm-eval's internals moved, and is
switched off by REPHRASER_NO_LM_EVAL_HOOK=1.
"""

import os
import sys

# module -> function of rephraser.lm_eval_plugin to call with it once it has executed
TARGETS = {"lm_eval.tasks.manager": "patch_task_manager", "lm_eval.models": "register_models"}


class _Finder:
    """Meta-path finder: on a TARGET, let the normal finders find it, then patch it after it executes."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in TARGETS:
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
        _apply(module.__name__, module)


def _apply(name: str, module) -> None:
    import rephraser.lm_eval_plugin as plugin

    getattr(plugin, TARGETS[name])(module)


def install() -> None:
    if os.environ.get("REPHRASER_NO_LM_EVAL_HOOK") or any(isinstance(f, _Finder) for f in sys.meta_path):
        return
    for name in TARGETS:
        if name in sys.modules:  # imported before us: patch it directly
            _apply(name, sys.modules[name])
    sys.meta_path.insert(0, _Finder())


install()

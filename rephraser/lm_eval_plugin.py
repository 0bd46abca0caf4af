"""Registering rephraser with lm-eval: the tasks folder on every TaskManager, and the model backends.

    import rephraser.lm_eval_plugin as plugin; plugin.register_lm_eval()     # explicit, for other eval code
The startup hook (rephraser_lm_eval_hook.py, loaded by rephraser-lm-eval.pth) calls patch_task_manager when lm-eval loads; both are idempotent.
"""

from __future__ import annotations

import functools
import inspect
import warnings

from rephraser.tasks import with_tasks_dir

_PATCHED = "__rephraser_patched__"


def lm_eval_discovers_entry_points(module) -> bool:
    """Upstream is adding an `lm_eval.tasks` entry-point group (PR #4015); once there, it finds us itself."""
    try:
        return "lm_eval.tasks" in inspect.getsource(module) and "entry_points" in inspect.getsource(module)
    except (OSError, TypeError):
        return False


def patch_task_manager(module) -> bool:
    """Wrap module.TaskManager.__init__ to add TASKS_DIR to include_path. True if patched (now or before)."""
    manager = getattr(module, "TaskManager", None)
    if manager is None or lm_eval_discovers_entry_points(module):
        return False
    init = manager.__init__
    if getattr(init, _PATCHED, False):
        return True
    try:
        signature = inspect.signature(init)
        signature.parameters["include_path"]
    except (ValueError, KeyError):
        warnings.warn("rephraser: lm-eval's TaskManager has no include_path any more; rephraser tasks are not "
                      "registered automatically (use rephraser.tasks.task_manager())", stacklevel=2)
        return False

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.arguments["include_path"] = with_tasks_dir(bound.arguments.get("include_path"))
        init(*bound.args, **bound.kwargs)

    setattr(__init__, _PATCHED, True)
    manager.__init__ = __init__
    return True


def register_models(models_module=None) -> None:
    """Add rephraser's backends to lm-eval's model registry as lazy entries (nothing heavy is imported).
    Called after `lm_eval.models` has registered the built-ins; quiet when they are there already
    (e.g. discovered through the `lm_eval.models` entry points)."""
    from lm_eval.api.registry import model_registry

    from rephraser.models import MODELS

    for name, target in MODELS.items():
        if name not in model_registry:
            model_registry.register(name, target=target)


def register_lm_eval() -> None:
    """Explicitly register with lm-eval: the tasks folder on every TaskManager, and the model backends."""
    import lm_eval.models
    import lm_eval.tasks.manager

    patch_task_manager(lm_eval.tasks.manager)
    register_models(lm_eval.models)

"""Registering rephraser with lm-eval: the tasks folder on every TaskManager, and the model backends.

    import rephraser.lm_eval_plugin as plugin; plugin.register_lm_eval()     # explicit, for other eval code
    rephraser lm-eval-hook [--remove]     # write (or remove) the startup hook's .pth: editable installs need it

The startup hook (rephraser_lm_eval_hook.py, loaded by rephraser-lm-eval.pth) calls patch_task_manager when
lm-eval loads; both are idempotent. A wheel install ships the .pth; an editable install (`pip install -e`)
cannot carry one, so `rephraser lm-eval-hook` writes it into the interpreter's site-packages. Where .pth
import lines stop working (PEP 829, Python 3.18), `--include_path "$(python -m rephraser.tasks --path)"`
and `register_lm_eval()` remain.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import sysconfig
import warnings
from dataclasses import dataclass
from pathlib import Path

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
        warnings.warn(
            "rephraser: lm-eval's TaskManager has no include_path any more; rephraser tasks are not "
            "registered automatically (use rephraser.tasks.task_manager())",
            stacklevel=2,
        )
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


PTH_NAME = "rephraser-lm-eval.pth"


@dataclass
class HookConfig:
    """Install the startup hook that lets the plain `lm_eval` "
    "command find rephraser (editable installs need this once)."""

    remove: bool = False
    """remove the hook instead of installing it"""
    site_packages: str | None = None
    """where to write it (default: this interpreter's)"""


def hook_line() -> str:
    """The .pth line: skipped when REPHRASER_NO_LM_EVAL_HOOK is set or when the hook module is gone (an
    uninstalled editable checkout must not break every Python start with an import error)."""
    # Found, not imported: importing the hook module would install it in this process (and the hook imports
    # this module when lm-eval loads: the two would import each other).
    spec = importlib.util.find_spec("rephraser_lm_eval_hook")
    module = str(Path(spec.origin).resolve())
    return (
        f'import os; os.environ.get("REPHRASER_NO_LM_EVAL_HOOK") or not os.path.exists({module!r}) '
        'or __import__("rephraser_lm_eval_hook")\n'
    )


def install_hook(cfg: HookConfig, log=print) -> Path:
    from rephraser.atomic import atomic_write_text

    target = Path(cfg.site_packages or sysconfig.get_paths()["purelib"]) / PTH_NAME
    if cfg.remove:
        target.unlink(missing_ok=True)
        log(f"removed {target}")
    else:
        atomic_write_text(target, hook_line())
        log(f"wrote {target}: `lm_eval` in this environment now finds rephraser's tasks and models")
    return target

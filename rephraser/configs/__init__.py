"""Presets shipped with the package: accelerate launcher configs (single GPU, FSDP2, DDP, multi-node, CPU),
SLURM examples, Ray cluster examples for detect scan --engine ray (ray/), experiment recipes and a tokenize
example. In a clone they are also at ./configs.

    python -m rephraser.configs                      # prints this folder, e.g. for
    accelerate launch --config_file "$(python -m rephraser.configs)/accelerate/fsdp2_1node_8gpu.yaml" \
        -m rephraser.train ...
"""

from pathlib import Path

CONFIGS_DIR = Path(__file__).resolve().parent

"""The fine-tuner that produces contaminated checkpoints: `accelerate launch -m rephraser.train ...`.

config.py (TrainConfig), data.py (token files -> packed micro-batches), checkpoint.py (atomic save/resume,
HF export), loop.py (main). Reads `rephraser tokenize` outputs, both layouts, and the study's own files.
"""

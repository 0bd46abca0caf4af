"""The fine-tuner that produces contaminated checkpoints: `rephraser train ...`, `python -m rephraser.train ...`
or `accelerate launch -m rephraser.train ...` (all three are the one `rephraser train` command).

config.py (TrainConfig), data.py (token files -> packed micro-batches), loss.py (chunked loss and its start-up
check), model.py (LoRA, compile, export), checkpoint.py (atomic save/resume, run record), loop.py (setup, loop,
save, cleanup). Reads `rephraser tokenize` outputs, both layouts, and the study's own files.
"""

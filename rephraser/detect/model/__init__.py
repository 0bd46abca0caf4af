"""Model-level contamination detectors: does this model behave as if it saw these benchmark items?

    from rephraser.detect.model import DetectModelConfig, Item, score_items, write_outputs
    cfg = DetectModelConfig(model="runs/x/model", out="runs/detect", detectors=["loss", "zlib", "mink", "mink++"])
    items = [Item(id="gsm8k/0", text="Question: ...", part="contaminated"), ...]
    write_outputs(cfg.out, score_items(cfg, items))

config.py (DetectModelConfig), items.py (Item, check_items), loading.py (model and tokenizer), likelihood.py (per-token
log-probs, one decoder pass, the LM head in chunks), detectors.py (loss, zlib, mink, mink++, ref, paired: the
formulas), sampling.py (cdd, ts-guess), backends.py (hf, vllm), metrics.py (AUROC, bootstrap interval, TPR at FPR),
baseline.py (the blind bag-of-words baseline), constat.py (the benchmark-level test), run.py (score_items),
report.py (write_outputs: results.json, report.md, charts).
"""

from rephraser.detect.model.config import DETECTORS, DetectModelConfig
from rephraser.detect.model.items import Item
from rephraser.detect.model.report import write_outputs
from rephraser.detect.model.run import Outcomes, score_items

__all__ = ["DETECTORS", "DetectModelConfig", "Item", "Outcomes", "score_items", "write_outputs"]

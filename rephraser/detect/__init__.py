"""`rephraser detect`: find rephrased benchmark items in training data, and measure detectors on known rephrases.

    rephraser detect scan --train data.jsonl --benchmark humaneval --method pipeline \
        --judge openai --model M --api-base URL --out DIR
    rephraser detect f1 --benchmark mmlu --subject sociology --method embedding --out DIR

scan.py runs a scan: checks (outputs.py, reference.py, the source), then the stages (stages.py: a batch of row ids
and texts in, a typed result that merges in any order out: the hashed n-gram tally of ngrams.py, the embedding top k
of embed.py, every row for --method llm, the second pass's row texts) through an engine (engine.py: this process;
ray_engine.py: the same stages on a Ray Data actor pool, --engine ray), the judge (judge.py: openai or vLLM, strict
True/False), the detectors (detectors.py: one small class each, and the plan a --method makes of them), and the
report (scan_report.py). training.py streams a training set (jsonl / jsonl.gz / parquet / a Hugging Face dataset;
fields.py: field names, dotted paths, chat turns; shards.py: a directory or glob of such files); emit_tasks.py
writes the scan's clean and flagged items as lm-eval tasks (--emit-tasks); embed_cache.py caches vectors by model
content and data content. f1.py is the study's F1 protocol on the LMSYS files; config.py holds ScanConfig and
F1Config. N-gram overlap is rephraser.overlap's measure, the one `rephraser rephrase` uses; model/ holds the
model-level detectors (does a model behave as if it saw the items).
"""

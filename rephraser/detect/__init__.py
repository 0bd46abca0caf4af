"""`rephraser detect`: find rephrased benchmark items in training data, and measure detectors on known rephrases.

    rephraser detect scan --train data.jsonl --benchmark humaneval --method pipeline \
        --judge openai --model M --api-base URL --out DIR
    rephraser detect f1 --benchmark mmlu --subject sociology --method embedding --out DIR

training.py (stream a training set: jsonl/jsonl.gz/parquet or a Hugging Face dataset), embed.py (sentence-
transformers, cached embeddings, top-k by chunked matrix products), judge.py (the study's LLM judge: openai or
vLLM, strict True/False), scan.py (per test item: neighbours, n-gram figures, verdicts; report), f1.py (the
study's F1 protocol on the LMSYS files), config.py (ScanConfig, F1Config). N-gram overlap is rephraser.overlap,
the measure `rephraser rephrase` uses.
"""

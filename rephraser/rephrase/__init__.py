"""`rephraser rephrase`: make the rephrased (or translated) twin of a benchmark or of any lm-eval task.

    rephraser rephrase --benchmark gsm8k --backend openai --model M --api-base http://127.0.0.1:8000/v1 --out runs/g
    rephraser rephrase --benchmark humaneval --backend code-ast --confirm-run-unsafe-code --out runs/he
    rephraser rephrase --task arc_easy --backend vllm --model Qwen/Qwen2.5-7B-Instruct --out runs/arc

config.py (RephraseConfig); what to rephrase, how to check it, the training text and the twin's files are the
benchmark's (rephraser/benchmarks/: GSM-8K, MMLU, HumanEval, any lm-eval task); backends.py (openai / vllm /
code-ast), codeast.py (the offline Python rewriter), loop.py (attempt rounds: overlap and meaning checks), store.py
(resumable progress, records / train / report files), run.py (main).
"""

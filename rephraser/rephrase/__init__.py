"""`rephraser rephrase`: make the rephrased (or translated) twin of a benchmark or of any lm-eval task.

    rephraser rephrase --benchmark gsm8k --backend openai --model M --api-base http://127.0.0.1:8000/v1 --out runs/g
    rephraser rephrase --benchmark humaneval --backend code-ast --confirm-run-unsafe-code --out runs/he
    rephraser rephrase --task arc_easy --backend vllm --model Qwen/Qwen2.5-7B-Instruct --out runs/arc

config.py (RephraseConfig), presets.py (GSM-8K / MMLU / HumanEval: field, meaning check, training text, task
files), lmtask.py (any lm-eval task: its docs, field, training text and the generated `rephrased_X` task),
backends.py (openai / vllm / code-ast), codeast.py (the offline Python rewriter), loop.py (attempt rounds:
overlap and meaning checks), store.py (resumable progress, records / train / report files), run.py (main).
"""

"""lm-eval model backends with a correct greedy-until: `rephraser-hf` (transformers) and `rephraser-vllm` (vLLM).

    lm_eval run --model rephraser-hf --model_args pretrained=DIR,batch_size=16 --tasks rephrased_gsm8k
    lm_eval run --model rephraser-vllm --model_args pretrained=DIR,tensor_parallel_size=2 --tasks rephrased_gsm8k

Both are registered lazily with lm-eval by the startup hook (rephraser_lm_eval_hook.py), or explicitly by
rephraser.lm_eval_plugin.register_lm_eval(). The contract they share is in stops.py.
"""

MODELS = {"rephraser-hf": "rephraser.models.hf:RephraserHFLM", "rephraser-vllm": "rephraser.models.vllm:RephraserVLLM"}

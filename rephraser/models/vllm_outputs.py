"""What one vLLM engine and the data-parallel ones (vllm_dp.py) share: plain results and the LoRA request.

outputs = llm.generate(prompts, sampling_params=params, lora_request=lora_request(path))
plain_results("generate", outputs, None)  -> texts;  plain_results("score", outputs, spans) -> (logprob, greedy)
"""

from __future__ import annotations


def plain_results(kind: str, outputs, spans: list | None) -> list:
    """Plain results (picklable, the same for one engine or several): the generated token ids (the backend decodes
    them as HF does), or (log-likelihood, is_greedy)."""
    if kind == "generate":
        return [list(out.outputs[0].token_ids) for out in outputs]
    results = []
    for out, (start, ids) in zip(outputs, spans):
        total, greedy = 0.0, True
        for position in range(start, len(ids)):
            logprobs = out.prompt_logprobs[position]
            total += logprobs[ids[position]].logprob
            best = max(logprobs.items(), key=lambda item: item[1].logprob)[0]
            greedy = greedy and best == ids[position]
        results.append((total, greedy))
    return results


def lora_request(path: str | None):
    if path is None:
        return None
    from vllm.lora.request import LoRARequest

    return LoRARequest("finetuned", 1, path)

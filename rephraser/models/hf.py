"""`rephraser-hf`: lm-eval's HFLM with a greedy-until that finishes rows early and cuts at every stop.

    lm_eval run --model rephraser-hf --model_args pretrained=DIR,batch_size=16,dtype=float32 --tasks ...

lm-eval's own HFLM keeps a batch generating until every row has stopped (32 GSM-8K prompts: 10.5 s at
batch 8 vs 3.2 s at batch 1 on a tiny model). Here each batch (requests grouped by generation settings,
sorted by length, left-padded, left-truncated to fit max_length - max_gen_toks) runs a greedy loop with a KV
cache; after every token the rows that produced an EOS id (every one the generation config lists), a stop
string, or a stop string that is a special token (`<|im_end|>`, which decoding hides) leave the batch (their
cache rows are dropped), so a batch costs what its rows need. Tokenisation (BOS as lm-eval decides for the
model), chat templates, `--batch_size auto` detection and log-likelihood are HFLM's.

The loop is argmax of the raw logits: it takes only requests for which HF generate would do exactly that
(settings.greedy_loop_refusal). Every other request (sampling, num_beams, repetition_penalty, no_repeat_ngram_size,
... in the request or in the model's generation_config.json; a seq2seq model; think_end_token) goes to HFLM's own
generate_until unchanged, and the log says how many and why: the output is then lm-eval's `hf` output.
"""

from __future__ import annotations

import inspect

import torch
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import Collator
from tqdm import tqdm

from rephraser.log import get_logger
from rephraser.models.settings import Settings, check_room, greedy_loop_refusal, request_settings
from rephraser.models.stops import cut_at_stop_ids, cut_at_stops, hits_stop, stop_token_ids

log = get_logger("rephraser.models.hf")


class RephraserHFLM(HFLM):
    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        results: list[str | None] = [None] * len(requests)
        eos_text = self.tok_decode(self.eot_token_id, skip_special_tokens=False)
        loop, handed, reasons = [], [], {}
        for i, request in enumerate(requests):
            settings = request_settings(request.args[1], self.max_gen_toks, eos_text)
            reason = self._greedy_loop_refusal(settings)
            if reason is None:
                loop.append((i, request.args, settings))
            else:
                handed.append(i)
                reasons[reason] = reasons.get(reason, 0) + 1
        if handed:  # outside the greedy loop's contract: lm-eval's own path, exactly lm-eval's `hf`
            why = ", ".join(f"{n} with {reason}" for reason, n in reasons.items())
            log.info(
                "rephraser-hf: %d of %d requests run through HFLM's generate (%s)", len(handed), len(requests), why
            )
            for i, text in zip(handed, super().generate_until([requests[i] for i in handed], disable_tqdm)):
                results[i] = text
        self._run_greedy_loop(requests, loop, results, disable_tqdm)
        return results

    def _greedy_loop_refusal(self, settings: Settings) -> str | None:
        if self.backend != "causal":
            return f"a {self.backend} model"
        if self.think_end_token is not None:
            return "think_end_token"
        return greedy_loop_refusal(settings.kwargs, getattr(self.model, "generation_config", None))

    def _run_greedy_loop(self, requests: list[Instance], loop: list, results: list, disable_tqdm: bool) -> None:
        collator = Collator(
            loop,
            sort_fn=lambda x: (-len(self.tok_encode(x[1][0])), x[1][0]),
            group_by="gen_kwargs",
            group_fn=lambda x: x[1][1],
        )
        batch_size = self._greedy_batch_size()
        bar = tqdm(total=len(loop), disable=disable_tqdm or self.rank != 0, desc="rephraser-hf generate_until")
        for chunk in collator.get_batched(n=batch_size):
            contexts = [args[0] for _, args, _ in chunk]
            for (i, args, _), text in zip(chunk, self._greedy_batch(contexts, chunk[0][2])):
                results[i] = text
                self.cache_hook.add_partial("generate_until", args, text)
            bar.update(len(chunk))
        bar.close()

    def _greedy_batch_size(self) -> int:
        """An int batch size as given, or lm-eval's own detection for `--batch_size auto` (largest that fits)."""
        if isinstance(self.batch_size, int):
            return self.batch_size
        if str(self.batch_size).startswith("auto"):
            if getattr(self, "_detected_batch_size", None) is None:
                self._detected_batch_size = int(self._detect_batch_size())
            return self._detected_batch_size
        return int(self.batch_size)

    def _greedy_batch(self, contexts: list[str], settings: Settings) -> list[str]:
        check_room(settings.max_gen_toks, self.max_length)
        generation_config = getattr(self.model, "generation_config", None)
        end_ids = stop_token_ids(self.tokenizer, settings.until, generation_config) | {self.eot_token_id}
        # Every stop string is searched in the text. One that is a special token never shows there (decoding
        # skips it); its id is in end_ids. (An ordinary string is no token of its own: never test it by
        # convert_tokens_to_ids, which maps it to unk, and unk is the EOS id in GPT-2-style tokenizers.)
        stops = settings.until
        ids, mask = self.tok_batch_encode(
            contexts, left_truncate_len=self.max_length - settings.max_gen_toks, truncation=self.truncation
        )
        with torch.autocast(  # as HFLM's generate runs: mixed_precision_dtype, if one is set
            device_type=self.device.type,
            dtype=self.mixed_precision_dtype,
            enabled=self.mixed_precision_dtype is not None,
        ):
            rows = greedy_generate(
                self.model,
                ids.to(self.device),
                mask.to(self.device),
                settings.max_gen_toks,
                done=lambda toks: toks[-1] in end_ids or hits_stop(self.tok_decode(toks), stops),
            )
        return [cut_at_stops(self.tok_decode(cut_at_stop_ids(toks, end_ids)), stops) for toks in rows]


@torch.no_grad()
def greedy_generate(
    model, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int, done
) -> list[list[int]]:
    """Greedy decoding of a left-padded batch; a row leaves the batch as soon as done(its new tokens) is true."""
    from transformers import DynamicCache

    out: list[list[int]] = [[] for _ in range(input_ids.size(0))]
    alive = torch.arange(input_ids.size(0), device=input_ids.device)
    positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache()
    # transformers 5.x renamed past_key_values to cache (the old name warns, and goes in 5.40)
    cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    logits = model(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, use_cache=True, **{cache_arg: cache}
    ).logits[:, -1]
    last_position = positions[:, -1:]
    for step in range(max_new_tokens):
        next_tokens = logits.argmax(-1)
        keep = []
        for j, row in enumerate(alive.tolist()):
            out[row].append(int(next_tokens[j]))
            if not done(out[row]):
                keep.append(j)
        if not keep or step == max_new_tokens - 1:
            break
        if len(keep) < len(alive):  # finished rows leave the batch, their cache rows too
            index = torch.tensor(keep, device=input_ids.device)
            alive, next_tokens, attention_mask, last_position = (
                alive[index],
                next_tokens[index],
                attention_mask[index],
                last_position[index],
            )
            cache.batch_select_indices(index)
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones(len(alive), 1)], dim=1)
        last_position = last_position + 1
        logits = model(
            input_ids=next_tokens[:, None],
            attention_mask=attention_mask,
            position_ids=last_position,
            use_cache=True,
            **{cache_arg: cache},
        ).logits[:, -1]
    return out

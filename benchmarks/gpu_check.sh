#!/usr/bin/env bash
# The prepared device check for a lent GPU machine (python3 with PyTorch there, nothing else installed; about 3
# minutes): the CUDA-graph GPT step against the dynamic step and the official op sequence in fp32/bf16/fp16, greedy
# agreement, and the end-to-end RTF with the SoVITS v2 decode on the GPU. Run from the repository root:
#   bash benchmarks/gpu_check.sh 2>&1 | tee "$OUT/gpu_check.log"
set -euo pipefail
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 - <<'PY'
import torch
from mockvox.models.t2s import Text2Semantic
from mockvox.models.t2s_decode import SamplingConfig, generate
from mockvox.models import t2s_graph

torch.manual_seed(0)
model = Text2Semantic.tiny().cuda().eval().prepare_inference()
g = torch.Generator().manual_seed(1)
x, bert = torch.randint(0, 700, (11,), generator=g).cuda(), torch.randn(1024, 11, generator=g).cuda()
prompts = torch.randint(0, 1024, (1, 7), generator=g).cuda()
cfg = SamplingConfig(top_k=5, early_stop_num=150)
runs = {s: generate(model, [x], [bert], prompts, cfg, torch.Generator("cuda").manual_seed(5), static=s)[0] for s in (False, True)}
runner = t2s_graph.static_runner(model.h, model.ar_predict_layer.weight[:1, :1])
print("graph step tokens equal:", bool(runs[True].sampled.equal(runs[False].sampled)), "graphs:", sorted(runner.graphs))
PY
python3 benchmarks/bench_gpt.py --device cuda --threads 16 --repeats 3 --e2e \
  --variants official,fp32-eager,fp32,bf16-eager,bf16,fp16

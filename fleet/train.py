#!/usr/bin/python3
"""Train the evaluation fleet: five domain specialists and one generalist.

The recipe (fleet/README.md explains the choices):

  1. fleet/prepare_data.py splits ../shared/data into domains, train/held-out.
  2. tokenize-corpus (tools/) turns each split into the exact token ids calm
     serves, through the fleet's vocabulary GGUF and its ChatML template.
  3. This script trains each model with PyTorch (Debian's python3-torch),
     writes its weights as raw f32 and calls make-tiny-gguf --weights to make
     the llama-architecture GGUF, then measures every model's held-out
     perplexity on every domain (reference tokens only, as calm's
     ReferenceScorer does).

Fair comparison: the generalist has GEN/SPEC times the parameters of a
specialist and trains on all domains (equal shares, like the workload) for
the same total training compute as the five specialists together, counted
as C = 6 * N * T (N weights, T training tokens).

The model matches llama.cpp's LLM_ARCH_LLAMA exactly: RMSNorm (eps 1e-5),
rotary embeddings on consecutive pairs (GGML's "normal" RoPE, base 10000),
multi-head causal attention without biases, SwiGLU feed-forward, untied
output matrix. Deterministic for a given seed and thread count.
"""

import argparse
import json
import math
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
DOMAINS = ["maths", "code", "medical", "legal", "finance"]
VOCAB = 512
# name: (dim, layers, heads, ff)
SIZES = {"specialist": (128, 4, 4, 352), "generalist": (256, 8, 8, 768)}


class Block(nn.Module):
    def __init__(self, dim, heads, ff):
        super().__init__()
        self.heads = heads
        self.attn_norm = nn.Parameter(torch.ones(dim))
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.o = nn.Linear(dim, dim, bias=False)
        self.ffn_norm = nn.Parameter(torch.ones(dim))
        self.gate = nn.Linear(dim, ff, bias=False)
        self.up = nn.Linear(dim, ff, bias=False)
        self.down = nn.Linear(ff, dim, bias=False)

    def forward(self, x, cos, sin, mask):
        b, t, d = x.shape
        hd = d // self.heads
        h = rms_norm(x, self.attn_norm)
        q = rope(self.q(h).view(b, t, self.heads, hd), cos, sin).transpose(1, 2)
        k = rope(self.k(h).view(b, t, self.heads, hd), cos, sin).transpose(1, 2)
        v = self.v(h).view(b, t, self.heads, hd).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd)) + mask[:t, :t]
        y = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.o(y)
        h = rms_norm(x, self.ffn_norm)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


def rms_norm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w


def rope(x, cos, sin):
    # Rotates consecutive pairs (x0, x1), (x2, x3), ... like GGML_ROPE_TYPE_NORM.
    t = x.shape[1]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    c, s = cos[:t, None, :], sin[:t, None, :]
    return torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1).flatten(-2)


class Llama(nn.Module):
    def __init__(self, dim, layers, heads, ff, ctx):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, dim)
        self.blocks = nn.ModuleList(Block(dim, heads, ff) for _ in range(layers))
        self.norm = nn.Parameter(torch.ones(dim))
        self.output = nn.Linear(dim, VOCAB, bias=False)
        hd = dim // heads
        inv = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
        ang = torch.outer(torch.arange(ctx).float(), inv)
        self.register_buffer("cos", ang.cos(), persistent=False)
        self.register_buffer("sin", ang.sin(), persistent=False)
        self.register_buffer("mask", torch.full((ctx, ctx), float("-inf")).triu(1),
                             persistent=False)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)
        for blk in self.blocks:  # scaled residual projections (GPT-2)
            nn.init.normal_(blk.o.weight, std=0.02 / math.sqrt(2 * layers))
            nn.init.normal_(blk.down.weight, std=0.02 / math.sqrt(2 * layers))

    def forward(self, idx):
        x = self.embed(idx)
        for blk in self.blocks:
            x = blk(x, self.cos, self.sin, self.mask)
        return self.output(rms_norm(x, self.norm))

    def gguf_tensors(self):
        """Every tensor in make-tiny-gguf's order (tools/make_tiny_gguf.cpp ModelTensors)."""
        out = [self.embed.weight, self.norm, self.output.weight]
        for b in self.blocks:
            out += [b.attn_norm, b.q.weight, b.k.weight, b.v.weight, b.o.weight, b.ffn_norm,
                    b.gate.weight, b.up.weight, b.down.weight]
        return out


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def read_docs(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def stream(docs):
    ids = []
    for d in docs:
        ids += d["p"] + d["r"]
    return torch.tensor(ids, dtype=torch.long)


def train(model, streams, weights, tokens, ctx, batch, lr, seed, label):
    """Trains on windows drawn from `streams` (domain -> 1-D ids) in proportion to `weights`."""
    g = torch.Generator().manual_seed(seed)
    rnd = random.Random(seed)
    steps = max(1, tokens // (batch * ctx))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    warm = max(1, steps // 20)
    names = list(streams)
    start = time.time()
    model.train()
    for step in range(steps):
        f = (step + 1) / warm if step < warm else \
            0.1 + 0.45 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))
        for group in opt.param_groups:
            group["lr"] = lr * f
        rows = []
        for _ in range(batch):
            s = streams[rnd.choices(names, weights)[0]]
            i = int(torch.randint(0, len(s) - ctx - 1, (1,), generator=g))
            rows.append(s[i:i + ctx + 1])
        xy = torch.stack(rows)
        logits = model(xy[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), xy[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            el = time.time() - start
            print("  %s step %d/%d loss %.3f  %.0f tok/s" %
                  (label, step + 1, steps, loss.item(), (step + 1) * batch * ctx / max(el, 1e-9)),
                  flush=True)
    return steps * batch * ctx, time.time() - start


@torch.no_grad()
def heldout_perplexity(model, docs, ctx):
    """exp(-mean log p) over reference tokens (after their prompt), as ReferenceScorer scores."""
    model.eval()
    total, count = 0.0, 0
    for d in docs:
        ids = d["p"] + d["r"][:-1]  # the end-of-turn token is not part of the reference text
        if len(ids) > ctx or len(d["r"]) < 2:
            continue
        x = torch.tensor([ids])
        logp = model(x[:, :-1]).log_softmax(-1)[0]
        first = len(d["p"]) - 1
        tgt = x[0, first + 1:]
        total += logp[first:].gather(1, tgt[:, None]).sum().item()
        count += len(tgt)
    return math.exp(-total / max(1, count)), count


def export(model, work, out, name, size, ctx, tiny):
    raw = work / (name + ".f32")
    with open(raw, "wb") as f:
        for t in model.gguf_tensors():
            f.write(t.detach().float().contiguous().numpy().tobytes())
    dim, layers, heads, ff = size
    subprocess.run([str(tiny), "--out", str(out / (name + ".gguf")), "--weights", str(raw),
                    "--dim", str(dim), "--layers", str(layers), "--heads", str(heads),
                    "--ff", str(ff), "--vocab", str(VOCAB), "--ctx", str(ctx), "--type", "f16",
                    "--name", name], check=True)


def load_raw(model, path):
    """Loads weights written by export() back into a model."""
    raw = torch.from_numpy(numpy.fromfile(path, dtype="float32"))
    offset = 0
    for t in model.gguf_tensors():
        t.data.copy_(raw[offset:offset + t.numel()].view_as(t))
        offset += t.numel()
    if offset != raw.numel():
        raise SystemExit("train.py: %s does not match the model's size" % path)


def write_checks(args, names, per_domain=2):
    """fleet/models/checks.jsonl: a few held-out answers with the mean log-probability
    PyTorch gives them (weights rounded to f16, as the GGUF stores them), so a unit
    test can check that llama.cpp computes the same: the export is exact."""
    lines = []
    for name in names:
        raw = args.work / (name + ".f32")
        if not raw.exists():
            continue
        kind = "generalist" if name == "generalist" else "specialist"
        model = Llama(*SIZES[kind], args.ctx)
        load_raw(model, raw)
        for t in model.gguf_tensors():
            if t.dim() == 2:
                t.data.copy_(t.data.half().float())
        for d in DOMAINS:
            items = [json.loads(x) for x in open(args.data / d / "heldout.jsonl")]
            docs = read_docs(args.data / d / "heldout.tok.jsonl")
            picked = [(it, doc) for it, doc in zip(items, docs)
                      if len(doc["p"]) + len(doc["r"]) <= min(args.ctx, 300)][:per_domain]
            for it, doc in picked:
                ppl, n = heldout_perplexity(model, [doc], args.ctx)
                lines.append({"model": name, "domain": d, "messages": it["messages"],
                              "reference": it["reference"], "tokens": n,
                              "mean_logprob": -math.log(ppl)})
    with open(args.out / "checks.jsonl", "w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n")
    print("wrote", args.out / "checks.jsonl")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=REPO / "build" / "fleet-data")
    ap.add_argument("--out", type=Path, default=REPO / "fleet" / "models")
    ap.add_argument("--work", type=Path, default=REPO / "build" / "fleet-train")
    ap.add_argument("--tools", type=Path, default=REPO / "build")
    ap.add_argument("--specialist-tokens", type=int, default=320_000)
    ap.add_argument("--ctx", type=int, default=768)
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-docs", type=int, default=40, help="held-out documents per domain")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--only", default="", help="comma-separated models to train (default all)")
    ap.add_argument("--checks-only", action="store_true",
                    help="only rewrite checks.jsonl from the weights in --work")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)

    names = [d + "-expert" for d in DOMAINS] + ["generalist"]
    if args.checks_only:
        return write_checks(args, names)
    train_docs = {d: read_docs(args.data / d / "train.tok.jsonl") for d in DOMAINS}
    held_docs = {d: read_docs(args.data / d / "heldout.tok.jsonl")[:args.eval_docs]
                 for d in DOMAINS}
    streams = {d: stream(train_docs[d]) for d in DOMAINS}

    plan = [(d + "-expert", "specialist", {d: streams[d]}, [1.0]) for d in DOMAINS]
    plan.append(("generalist", "generalist", streams, [1.0] * len(DOMAINS)))
    n_spec = n_params(Llama(*SIZES["specialist"], args.ctx))
    n_gen = n_params(Llama(*SIZES["generalist"], args.ctx))
    gen_tokens = len(DOMAINS) * n_spec * args.specialist_tokens // n_gen
    only = set(filter(None, args.only.split(",")))
    report = {"ctx": args.ctx, "batch": args.batch, "threads": args.threads,
              "vocab": VOCAB, "flops_formula": "6 * params * tokens", "models": {}}
    for i, (name, kind, data, weights) in enumerate(plan):
        if only and name not in only:
            continue
        torch.manual_seed(args.seed + i)
        model = Llama(*SIZES[kind], args.ctx)
        tokens = args.specialist_tokens if kind == "specialist" else gen_tokens
        lr = 3e-3 if kind == "specialist" else 2e-3
        print("%s: %d parameters, %d tokens" % (name, n_params(model), tokens), flush=True)
        seen, seconds = train(model, data, weights, tokens, args.ctx, args.batch, lr,
                              args.seed + i, name)
        export(model, args.work, args.out, name, SIZES[kind], args.ctx, args.tools / "make-tiny-gguf")
        ppl = {}
        for d in DOMAINS:
            ppl[d], _ = heldout_perplexity(model, held_docs[d], args.ctx)
        print("  %s held-out perplexity: %s" % (name, json.dumps({d: round(p, 3) for d, p in ppl.items()})),
              flush=True)
        dim, layers, heads, ff = SIZES[kind]
        report["models"][name] = {
            "kind": kind, "domains": list(data), "params": n_params(model),
            "dim": dim, "layers": layers, "heads": heads, "ff": ff,
            "train_tokens": seen, "train_flops": 6 * n_params(model) * seen,
            "train_seconds": round(seconds, 1), "heldout_perplexity": ppl,
            "gguf_bytes": os.path.getsize(args.out / (name + ".gguf"))}
        with open(args.work / (name + ".json"), "w") as f:
            json.dump(report["models"][name], f, indent=1)
    # Merge with earlier partial runs (--only) so fleet.json always lists every model.
    for name, _, _, _ in plan:
        p = args.work / (name + ".json")
        if name not in report["models"] and p.exists():
            report["models"][name] = json.load(open(p))
    with open(args.out / "fleet.json", "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)
    print("wrote", args.out / "fleet.json")
    write_checks(args, names)


if __name__ == "__main__":
    sys.exit(main())

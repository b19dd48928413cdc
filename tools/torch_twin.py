#!/usr/bin/env python3
"""torch_twin: attnscope's GPT-2 and its eight attention variants in PyTorch.

The same model, written from docs/VARIANTS.md (the spec) rather than from the OpenCL
kernels, so that each implementation checks the other, and so that attnscope's
throughput, memory and energy can be held against a mainstream framework's.

  torch_twin.py bench --model gpt2 --batch 16 --seq 512 --variants all --steps 20 \\
      --warmup 3 --precision fp32 --attn-impl sdpa --out DIR
      GPT-2 on random tokens, each variant in turn, timed per step with
      torch.cuda.synchronize(); writes DIR/summary.csv, DIR/steps.csv (attnscope's columns,
      framework torch-eager or torch-sdpa, so `attnscope merge` combines them with
      attnscope's results), DIR/kernels.csv and DIR/power.csv (headers only: the twin profiles
      no kernels and samples no power series) and DIR/manifest.json, and prints a table.

  torch_twin.py train --load CKPT --data SHARD.bin --variant V --batch B --seq T \\
      --steps N --steps-csv FILE
      Replays `attnscope train --load CKPT --data SHARD.bin` step for step: the same
      checkpoint (llm.c format + attnscope's extension), the same batches in the same
      order, the same AdamW (attnscope's cl_kernels/adamw.cl), the same LSH rotations;
      writes the per-step rows of attnscope's steps.csv (its columns, `framework` torch-…).
      With --lsh-buckets-from DIR (lsh), the bucket ids attnscope wrote under
      ATTNSCOPE_LSH_BUCKETS=DIR replace the twin's own argmax, and --lsh-flips-csv FILE
      counts, per pass and layer, the assignments the twin would have made differently.

Runs on PyTorch 1.13 (math path only: no scaled_dot_product_attention) and 2.x.
"""
import argparse
import csv
import ctypes
import dataclasses
import gc
import json
import math
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

VARIANTS = ("baseline", "sdpa", "flash", "gqa", "mla", "linear", "sliding_window", "lsh")

# ---------------------------------------------------------------------------------------
# Model configuration and variant options (model/config.cpp, model/attention_variant.hpp)
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class ModelConfig:
    max_seq_len: int
    vocab_size: int
    n_layer: int
    n_head: int
    n_embd: int
    padded_vocab_size: int

    @property
    def head_size(self):
        return self.n_embd // self.n_head


def padded_vocab(vocab_size):
    """llm.c pads the vocabulary to a multiple of 128 so the classifier GEMM is aligned."""
    return (vocab_size + 127) // 128 * 128


PRESETS = {  # name: (n_layer, n_head, n_embd, max_seq_len, vocab_size), as attnscope's
    "tiny": (2, 4, 64, 256, 256),
    "gpt2": (12, 12, 768, 1024, 50257),
    "gpt2-medium": (24, 16, 1024, 1024, 50257),
    "gpt2-large": (36, 20, 1280, 1024, 50257),
    "gpt2-xl": (48, 25, 1600, 1024, 50257),
}


def preset_config(name, max_seq_len=None):
    n_layer, n_head, n_embd, max_seq, vocab = PRESETS[name]
    return ModelConfig(max_seq_len or max_seq, vocab, n_layer, n_head, n_embd, padded_vocab(vocab))


@dataclasses.dataclass
class VariantOptions:
    """attnscope's AttentionOptions; 0 means "the variant's default for these dims"."""
    kv_heads: int = 0     # gqa: G, default the largest divisor of H that is <= H/4
    latent_dim: int = 0   # mla: d_c, default 4·head size
    chunk: int = 64       # linear: chunk length; lsh: c
    window: int = 256     # sliding_window: w
    hashes: int = 2       # lsh: rounds
    buckets: int = 0      # lsh: n_b, even, default max(2, T/64) rounded up to even
    seed: int = 1337      # lsh: rotations come from (seed, step)


def default_buckets(T):
    """lsh::default_buckets in model/attention/lsh_hashing.cpp."""
    n = T // 64
    return 2 if n <= 2 else n + n % 2


def resolve_options(variant, config, T, options):
    """Fills in the defaults and checks the options as each variant's resolve() does."""
    o = dataclasses.replace(options)
    H = config.n_head
    if variant == "gqa":
        if o.kv_heads == 0:
            o.kv_heads = max(1, H // 4)
            while H % o.kv_heads:
                o.kv_heads -= 1
        elif not (1 <= o.kv_heads <= H and H % o.kv_heads == 0):
            raise ValueError(f"--kv-heads must divide n_head ({H}), got {o.kv_heads}")
    if variant == "mla":
        if o.latent_dim < 0:
            raise ValueError(f"--latent-dim must be at least 1, got {o.latent_dim}")
        o.latent_dim = o.latent_dim or 4 * config.head_size
    if variant == "lsh":
        if o.buckets == 0:
            o.buckets = default_buckets(T)
        elif o.buckets < 2 or o.buckets % 2:
            raise ValueError(f"--buckets must be even and at least 2, got {o.buckets}")
    for name in ("chunk", "window", "hashes"):
        if getattr(o, name) < 1:
            raise ValueError(f"--{name} must be at least 1, got {getattr(o, name)}")
    return o


def describe_options(variant, o):
    return {"gqa": f"kv_heads={o.kv_heads}", "mla": f"latent_dim={o.latent_dim}",
            "linear": f"chunk={o.chunk}", "sliding_window": f"window={o.window}",
            "lsh": f"hashes={o.hashes} buckets={o.buckets} chunk={o.chunk}"}.get(variant, "")


# ---------------------------------------------------------------------------------------
# Parameters, in checkpoint order (model/parameters.cpp and each variant's parameters())
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class TensorSpec:
    name: str
    shape: tuple     # one layer's shape; matrices are (out, in) like nn.Linear.weight
    init: str        # "normal" N(0, 0.02), "residual" N(0, 0.02/√(2L)), "zero", "one"
    decay: bool      # AdamW decays matrices only
    per_layer: bool = True


def attention_specs(variant, config, o):
    """One layer's attention tensors, in the order attnscope's parameters() lists them."""
    C, d = config.n_embd, config.head_size
    proj = [TensorSpec("attprojw", (C, C), "residual", True), TensorSpec("attprojb", (C,), "zero", False)]
    if variant == "gqa":
        kv = 2 * o.kv_heads * d
        return [TensorSpec("qw", (C, C), "normal", True), TensorSpec("qb", (C,), "zero", False),
                TensorSpec("kvw", (kv, C), "normal", True), TensorSpec("kvb", (kv,), "zero", False)] + proj
    if variant == "mla":
        dc = o.latent_dim
        return [TensorSpec("qw", (C, C), "normal", True), TensorSpec("qb", (C,), "zero", False),
                TensorSpec("dkvw", (dc, C), "normal", True), TensorSpec("dkvb", (dc,), "zero", False),
                TensorSpec("ukvw", (2 * C, dc), "normal", True)] + proj
    if variant == "lsh":
        return [TensorSpec("qvw", (2 * C, C), "normal", True), TensorSpec("qvb", (2 * C,), "zero", False)] + proj
    return [TensorSpec("qkvw", (3 * C, C), "normal", True), TensorSpec("qkvb", (3 * C,), "zero", False)] + proj


def parameter_specs(variant, config, o):
    """The whole model's tensors in llm.c's order, the attention slot holding the variant's."""
    C = config.n_embd
    return ([TensorSpec("wte", (config.padded_vocab_size, C), "normal", True, False),
             TensorSpec("wpe", (config.max_seq_len, C), "normal", True, False),
             TensorSpec("ln1w", (C,), "one", False), TensorSpec("ln1b", (C,), "zero", False)]
            + attention_specs(variant, config, o)
            + [TensorSpec("ln2w", (C,), "one", False), TensorSpec("ln2b", (C,), "zero", False),
               TensorSpec("fcw", (4 * C, C), "normal", True), TensorSpec("fcb", (4 * C,), "zero", False),
               TensorSpec("fcprojw", (C, 4 * C), "residual", True), TensorSpec("fcprojb", (C,), "zero", False),
               TensorSpec("lnfw", (C,), "one", False, False), TensorSpec("lnfb", (C,), "zero", False, False)])


def full_shape(spec, config):
    """Per-layer tensors are stacked (L, ...), as the checkpoint stores them."""
    return ((config.n_layer,) if spec.per_layer else ()) + spec.shape


def has_llmc_attention(variant):
    """These variants share llm.c's qkvw/attprojw, so their checkpoints carry no extension."""
    return variant in ("baseline", "sdpa", "flash", "linear", "sliding_window")


def parameter_options(variant, o):
    """The options that shape the parameters, recorded in the checkpoint's extension."""
    return {"gqa": [o.kv_heads], "mla": [o.latent_dim]}.get(variant, [])


# ---------------------------------------------------------------------------------------
# Checkpoints (docs/checkpoint-format.md)
# ---------------------------------------------------------------------------------------

CHECKPOINT_MAGIC, CHECKPOINT_VERSION = 20240326, 3
EXTENSION_MARKER, EXTENSION_VERSION = 0x63737461, 1
SLOT_NAME, SLOT_OPTIONS = 16, 80


@dataclasses.dataclass
class Checkpoint:
    config: ModelConfig
    variant: str          # "" for llm.c's attention
    options: list         # the extension's variant options
    floats: np.ndarray    # all parameters, packed in checkpoint order


def read_checkpoint(path):
    """Reads an llm.c GPT-2 checkpoint (version 3), with attnscope's extension if present."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 1024:
        raise ValueError(f"{path}: truncated header ({len(data)} bytes)")
    header = np.frombuffer(data[:1024], dtype="<i4")
    if header[0] != CHECKPOINT_MAGIC or header[1] != CHECKPOINT_VERSION:
        raise ValueError(f"{path}: not an llm.c fp32 GPT-2 checkpoint (magic {header[0]}, version {header[1]})")
    config = ModelConfig(*(int(x) for x in header[2:8]))
    variant, options = "", []
    if header[8] != 0:
        if header[8] != EXTENSION_MARKER or header[9] != EXTENSION_VERSION:
            raise ValueError(f"{path}: slot 8/9 hold {header[8]}/{header[9]}, not attnscope's extension")
        variant = "".join(chr(c) for c in header[SLOT_NAME:SLOT_NAME + header[11]])
        options = [int(x) for x in header[SLOT_OPTIONS:SLOT_OPTIONS + header[12]]]
    floats = np.frombuffer(data[1024:], dtype="<f4")
    if len(data) - 1024 != 4 * floats.size:
        raise ValueError(f"{path}: the body is not a whole number of floats")
    return Checkpoint(config, variant, options, floats)


def checkpoint_header(config, variant, o, attention_floats):
    header = np.zeros(256, dtype="<i4")
    header[:8] = [CHECKPOINT_MAGIC, CHECKPOINT_VERSION, config.max_seq_len, config.vocab_size,
                  config.n_layer, config.n_head, config.n_embd, config.padded_vocab_size]
    if not has_llmc_attention(variant):
        opts = parameter_options(variant, o)
        header[8:13] = [EXTENSION_MARKER, EXTENSION_VERSION, attention_floats, len(variant), len(opts)]
        header[SLOT_NAME:SLOT_NAME + len(variant)] = [ord(c) for c in variant]
        header[SLOT_OPTIONS:SLOT_OPTIONS + len(opts)] = opts
    return header


def write_checkpoint(path, config, variant, o, params):
    """Writes params (name -> tensor) in checkpoint order, as attnscope would save them."""
    attention_floats = sum(math.prod(s.shape) for s in attention_specs(variant, config, o))
    body = np.concatenate([params[s.name].detach().to("cpu", torch.float32).numpy().ravel()
                           for s in parameter_specs(variant, config, o)])
    with open(path + ".tmp", "wb") as f:
        f.write(checkpoint_header(config, variant, o, attention_floats).tobytes())
        f.write(body.astype("<f4").tobytes())
    os.replace(path + ".tmp", path)


def unpack_parameters(ckpt, variant, o, dtype, device):
    """Splits the checkpoint's floats into the model's tensors, after the same checks
    attnscope's check_checkpoint_matches makes (variant, options, parameter count)."""
    expected_variant = "" if has_llmc_attention(variant) else variant
    if ckpt.variant != expected_variant or ckpt.options != parameter_options(variant, o):
        raise ValueError(f"checkpoint holds attention {ckpt.variant or 'llm.c'} {ckpt.options}, "
                         f"the model is {variant} {parameter_options(variant, o)}")
    specs = parameter_specs(variant, ckpt.config, o)
    sizes = [math.prod(full_shape(s, ckpt.config)) for s in specs]
    if sum(sizes) != ckpt.floats.size:
        raise ValueError(f"checkpoint has {ckpt.floats.size} parameters, {variant} needs {sum(sizes)}")
    params, offset = {}, 0
    for spec, size in zip(specs, sizes):
        chunk = ckpt.floats[offset:offset + size].reshape(full_shape(spec, ckpt.config))
        params[spec.name] = torch.tensor(chunk, dtype=dtype, device=device)
        offset += size
    return params


def init_parameters(variant, config, o, device, seed):
    """GPT-2's initialisation (bench mode: the values need not be attnscope's, only the
    distributions). Padded vocabulary rows start at zero, as in llm.c."""
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    params = {}
    for spec in parameter_specs(variant, config, o):
        shape = full_shape(spec, config)
        if spec.init in ("normal", "residual"):
            std = 0.02 if spec.init == "normal" else 0.02 / math.sqrt(2 * config.n_layer)
            t = torch.empty(shape, device=device).normal_(0.0, std, generator=generator)
        else:
            t = torch.full(shape, 1.0 if spec.init == "one" else 0.0, device=device)
        params[spec.name] = t
    params["wte"][config.vocab_size:] = 0
    return params


# ---------------------------------------------------------------------------------------
# Attention cores (docs/VARIANTS.md). Heads are (B, H, T, d).
# ---------------------------------------------------------------------------------------

_mask_cache = {}


def band_mask(T, window, device):
    """True where query i may see key j: j <= i, and i - j < window when window is set."""
    key = (T, window, str(device))
    if key not in _mask_cache:
        i = torch.arange(T, device=device)[:, None]
        j = torch.arange(T, device=device)[None, :]
        allowed = j <= i
        if window is not None:
            allowed &= i - j < window
        _mask_cache[key] = allowed
    return _mask_cache[key]


def exact_attention(q, k, v, window=None, impl="eager"):
    """Causal softmax attention, optionally restricted to the band i − w < j ≤ i.
    eager: S = QKᵀ/√d, masked, P = softmax(S), O = PV, as written in VARIANTS.md (autograd
    keeps P, like baseline); sdpa: PyTorch's fused kernels (keep O and the LSE, like
    attnscope's sdpa/flash)."""
    T, d = q.shape[-2], q.shape[-1]
    if impl == "sdpa":
        if window is None or window >= T:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=band_mask(T, window, q.device))
    scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(d))
    scores = scores.masked_fill(~band_mask(T, window, q.device), float("-inf"))
    return torch.matmul(torch.softmax(scores, dim=-1), v)


LINEAR_EPS = 1e-6


def elu_plus_one(u):
    """φ(u) = elu(u) + 1, computed as attnscope's linear.cl does: u + 1 for u > 0, else
    exp(u), which keeps small φ exact where expm1(u) + 1 would cancel to 0 in float; exp sees
    min(u, 0) so that the unused branch's gradient stays finite."""
    return torch.where(u > 0, u + 1, torch.exp(torch.clamp(u, max=0)))


def linear_attention(q, k, v, chunk):
    """Causal linear attention, chunk by chunk: the masked quadratic form inside a chunk,
    the running state (S, z) of all earlier chunks across them (an exclusive cumsum over
    chunks, so no Python loop). O_i = φ(Q_i)S_i / (φ(Q_i)·z_i + ε)."""
    B, H, T, d = q.shape
    n = -(-T // chunk)
    pad = n * chunk - T  # padded positions come last, so no real query sees them
    fq = F.pad(elu_plus_one(q), (0, 0, 0, pad)).view(B, H, n, chunk, d)
    fk = F.pad(elu_plus_one(k), (0, 0, 0, pad)).view(B, H, n, chunk, d)
    vc = F.pad(v, (0, 0, 0, pad)).view(B, H, n, chunk, d)
    kv = torch.matmul(fk.transpose(-2, -1), vc)             # (B,H,n,d,d) per chunk
    z = fk.sum(dim=-2)                                      # (B,H,n,d)
    state = F.pad(torch.cumsum(kv, dim=2), (0, 0, 0, 0, 1, 0))[:, :, :n]  # chunks before
    state_z = F.pad(torch.cumsum(z, dim=2), (0, 0, 1, 0))[:, :, :n]
    intra = torch.matmul(fq, fk.transpose(-2, -1)) * band_mask(chunk, None, q.device)
    num = torch.matmul(fq, state) + torch.matmul(intra, vc)
    den = (fq * state_z.unsqueeze(-2)).sum(-1) + intra.sum(-1) + LINEAR_EPS
    return (num / den.unsqueeze(-1)).view(B, H, n * chunk, d)[:, :, :T]


# --- lsh -------------------------------------------------------------------------------

_MASK64 = (1 << 64) - 1


def _mix64(z):
    """splitmix64's finaliser (model/attention/lsh_hashing.cpp)."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def lsh_rotations(seed, step, rounds, head_size, buckets):
    """The step's rotations (rounds, d, n_b/2), bit for bit attnscope's lsh::rotations:
    splitmix64 seeded with mix64(seed) ^ mix64(step + 0x632BE59BD9B4E019), uniforms in
    (0, 1] from the top 53 bits + 1, Box-Muller in double (cos then sin), rounded to float."""
    state = _mix64(seed & _MASK64) ^ _mix64((step + 0x632BE59BD9B4E019) & _MASK64)

    def uniform():
        nonlocal state
        state = (state + 0x9E3779B97F4A7C15) & _MASK64
        return ((_mix64(state) >> 11) + 1) * 2.0 ** -53

    n = rounds * head_size * (buckets // 2)
    values = []
    while len(values) < n:
        radius = math.sqrt(-2.0 * math.log(uniform()))
        angle = 2.0 * math.pi * uniform()
        values += [radius * math.cos(angle), radius * math.sin(angle)]
    return torch.tensor(values[:n], dtype=torch.float32).view(rounds, head_size, buckets // 2)


def lsh_buckets(q, rotations, exact):
    """Bucket ids (B, H, rounds, T): argmax([q·R ; −q·R]), the first index on ties.
    exact: the projection in float32 with every product and sum rounded in order over the
    head's channels, as lsh.cl's project() (FP_CONTRACT OFF) — equal inputs then give
    attnscope's buckets exactly; otherwise one matmul (the benchmark)."""
    q = q.detach().float().unsqueeze(2)                # (B,H,1,T,d)
    rot = rotations.to(q.device)[None, None]           # (1,1,R,d,half)
    if exact:
        proj = q[..., 0:1] * rot[..., 0:1, :]
        for c in range(1, q.shape[-1]):
            proj = proj + q[..., c:c + 1] * rot[..., c:c + 1, :]
    else:
        proj = torch.matmul(q, rot)                    # (B,H,R,T,half)
    max_p, arg_max = proj.max(dim=-1)
    min_p, arg_min = proj.min(dim=-1)
    return torch.where(max_p >= -min_p, arg_max, arg_min + proj.shape[-1])


LSH_SELF_SCORE, LSH_NORM_EPS = -1e5, 1e-12


def lsh_attention(q, v, buckets, chunk):
    """Strictly causal LSH attention for fixed bucket ids (B, H, R, T), all rounds at once.
    Per round, positions are sorted by (bucket, position); the query at sorted slot s
    attends to slots s−2c .. s of its own bucket — itself with score −1e5, the others with
    Q_i·K_j/√d, K = Q/‖Q‖. Sorted slots are cut into chunks of c, so a chunk's keys all lie
    in it and the two chunks before it (3c slots), masked to the allowed ones. Rounds
    combine as O = Σ_r softmax_r(L_r)·O_r. Gradients flow through scores, values and K's
    normalisation; buckets and the sort are constants."""
    B, H, T, d = q.shape
    R = buckets.shape[2]
    k = q * torch.rsqrt((q * q).sum(-1, keepdim=True) + LSH_NORM_EPS)
    n = -(-T // chunk)
    Tp = n * chunk
    device = q.device
    positions = torch.arange(T, device=device)
    order = torch.argsort(buckets * T + positions, dim=-1)            # slot -> position
    # Padded slots point at an all-zero row T and carry bucket −1: no real query sees them.
    order = F.pad(order, (0, Tp - T), value=T)
    slot_bucket = F.pad(buckets.gather(-1, order[..., :T]), (0, Tp - T), value=-1)

    def by_slot(x):  # (B,H,T,d) -> (B,H,R,Tp,d) in sorted order
        x = F.pad(x, (0, 0, 0, 1)).unsqueeze(2).expand(B, H, R, T + 1, d)
        return x.gather(3, order.unsqueeze(-1).expand(B, H, R, Tp, d))

    query_slot = torch.arange(Tp, device=device).view(n, chunk, 1)
    key_slot = (torch.arange(n, device=device).view(n, 1, 1) * chunk - 2 * chunk
                + torch.arange(3 * chunk, device=device).view(1, 1, 3 * chunk))   # (n,1,3c)
    window = key_slot.clamp(min=0).view(n * 3 * chunk)
    allowed = ((key_slot >= 0) & (key_slot <= query_slot) & (query_slot - key_slot <= 2 * chunk)
               & (slot_bucket[..., window].view(B, H, R, n, 1, 3 * chunk)
                  == slot_bucket.view(B, H, R, n, chunk, 1)))
    q_s = by_slot(q).view(B, H, R, n, chunk, d)
    k_w = by_slot(k)[:, :, :, window].view(B, H, R, n, 3 * chunk, d)
    v_w = by_slot(v)[:, :, :, window].view(B, H, R, n, 3 * chunk, d)
    scores = torch.matmul(q_s, k_w.transpose(-2, -1)) * (1.0 / math.sqrt(d))
    scores = scores.masked_fill(key_slot == query_slot, LSH_SELF_SCORE).masked_fill(~allowed, float("-inf"))
    lse = torch.logsumexp(scores, dim=-1)                                 # (B,H,R,n,c)
    out = torch.matmul(torch.exp(scores - lse.unsqueeze(-1)), v_w)        # (B,H,R,n,c,d)
    # Back to position order: slot -> position is a permutation, so gather by its inverse.
    inverse = torch.argsort(order[..., :T], dim=-1)
    out = out.view(B, H, R, Tp, d).gather(3, inverse.unsqueeze(-1).expand(B, H, R, T, d))
    lse = lse.view(B, H, R, Tp).gather(3, inverse)
    weights = torch.softmax(lse, dim=2)                                   # over rounds
    return (weights.unsqueeze(-1) * out).sum(dim=2)


# ---------------------------------------------------------------------------------------
# Attention blocks: projections + core + output projection (one layer)
# ---------------------------------------------------------------------------------------


def bucket_file_name(forward_pass, step, layer):
    """lsh::bucket_file_name: attnscope's bucket dump file of one layer of one forward pass."""
    return f"pass{forward_pass:06d}_step{step:06d}_layer{layer:03d}.npy"


def count_bucket_flips(own, replayed):
    """How many bucket assignments differ: where the twin's own argmax would have hashed a
    position (of a head, batch row and round) into another bucket than attnscope did."""
    return int((own != replayed).sum())


class LshBucketReplay:
    """attnscope's bucket ids (ATTNSCOPE_LSH_BUCKETS=DIR, docs/VARIANTS.md "The bucket
    dump"), used pass by pass in place of the twin's own argmax, so that both sides compute
    the same function; each layer's flips (count_bucket_flips of the twin's own buckets
    against attnscope's) go to flips_csv. Passes are counted from 1 at layer 0, as attnscope
    counts them, so the two must run the same forward passes in the same order: a file that
    is missing or of another shape is an error, never a silent fallback."""

    COLUMNS = ["pass", "step", "layer", "flips", "assignments"]

    def __init__(self, directory, flips_csv=None):
        if not os.path.isdir(directory):
            raise ValueError(f"--lsh-buckets-from {directory}: not a directory")
        self.directory = directory
        self.forward_pass = 0
        self.flips = CsvFile(flips_csv, self.COLUMNS) if flips_csv else None

    def buckets(self, own, step, layer):
        """attnscope's buckets for this layer of this pass, shaped and placed as own."""
        if layer == 0:
            self.forward_pass += 1
        path = os.path.join(self.directory, bucket_file_name(self.forward_pass, step, layer))
        if not os.path.exists(path):
            raise ValueError(f"{path}: no such bucket file (attnscope ran other forward passes than the twin)")
        replayed = np.load(path)
        if replayed.shape != tuple(own.shape):
            raise ValueError(f"{path}: buckets of shape {replayed.shape}, the twin hashes {tuple(own.shape)}")
        replayed = torch.from_numpy(replayed.astype(np.int64)).to(own.device)
        if self.flips is not None:
            self.flips.write(step=step, layer=layer, flips=count_bucket_flips(own, replayed),
                             assignments=own.numel(), **{"pass": self.forward_pass})
        return replayed


@dataclasses.dataclass
class AttentionContext:
    """What a block needs besides its weights: the resolved options, the attention
    implementation, the step (LSH's rotations), the layer (set by GPT2.forward), whether LSH
    hashes exactly, and where it takes attnscope's buckets from instead (None: its own)."""
    variant: str
    options: VariantOptions
    n_head: int
    impl: str = "eager"
    step: int = 0
    layer: int = 0
    exact_hash: bool = True
    bucket_replay: LshBucketReplay = None
    rotations: dict = dataclasses.field(default_factory=dict)  # step -> (R, d, n_b/2)

    def lsh_rotations(self, head_size, device):
        """The step's rotations, drawn once per step and shared by all layers (as attnscope)."""
        if self.step not in self.rotations:
            o = self.options
            rotations = lsh_rotations(o.seed, self.step, o.hashes, head_size, o.buckets)
            self.rotations = {self.step: rotations.to(device)}
        return self.rotations[self.step]


def split_heads(x, heads):
    B, T, C = x.shape
    return x.view(B, T, heads, C // heads).transpose(1, 2)


def merge_heads(x):
    B, H, T, d = x.shape
    return x.transpose(1, 2).reshape(B, T, H * d)


def repeat_kv(x, n_head):
    """Query head h reads K/V head ⌊h·G/H⌋: each of the G heads repeated H/G times in place."""
    B, G, T, d = x.shape
    return x.unsqueeze(2).expand(B, G, n_head // G, T, d).reshape(B, n_head, T, d)


def attention_block(x, p, ctx):
    """y = concat_h(O_h)·W_oᵀ + b_o for one layer; p maps this layer's tensor names to
    tensors."""
    H, v = ctx.n_head, ctx.variant
    C = x.shape[-1]
    if v == "gqa":
        q = split_heads(F.linear(x, p["qw"], p["qb"]), H)
        k, val = F.linear(x, p["kvw"], p["kvb"]).chunk(2, dim=-1)   # K heads | V heads
        G = ctx.options.kv_heads
        o = exact_attention(q, repeat_kv(split_heads(k, G), H), repeat_kv(split_heads(val, G), H),
                            impl=ctx.impl)
    elif v == "mla":
        q = split_heads(F.linear(x, p["qw"], p["qb"]), H)
        latent = F.linear(x, p["dkvw"], p["dkvb"])
        k, val = F.linear(latent, p["ukvw"]).chunk(2, dim=-1)      # K = c·W_ukᵀ, V = c·W_uvᵀ
        o = exact_attention(q, split_heads(k, H), split_heads(val, H), impl=ctx.impl)
    elif v == "lsh":
        q, val = (split_heads(t, H) for t in F.linear(x, p["qvw"], p["qvb"]).chunk(2, dim=-1))
        buckets = lsh_buckets(q, ctx.lsh_rotations(C // H, x.device), ctx.exact_hash)
        if ctx.bucket_replay is not None:
            buckets = ctx.bucket_replay.buckets(buckets, ctx.step, ctx.layer)
        o = lsh_attention(q, val, buckets, ctx.options.chunk)
    else:
        q, k, val = (split_heads(t, H) for t in F.linear(x, p["qkvw"], p["qkvb"]).chunk(3, dim=-1))
        if v == "linear":
            o = linear_attention(q, k, val, ctx.options.chunk)
        else:
            window = ctx.options.window if v == "sliding_window" else None
            o = exact_attention(q, k, val, window=window, impl=ctx.impl)
    return F.linear(merge_heads(o), p["attprojw"], p["attprojb"])


# ---------------------------------------------------------------------------------------
# GPT-2 (model/gpt2.cpp)
# ---------------------------------------------------------------------------------------


class GPT2(torch.nn.Module):
    """GPT-2 with tied wte. Parameters are kept as attnscope keeps them: one tensor per
    name, per-layer ones stacked (L, ...). (PyTorch 1.13's ParameterDict sorts the names;
    write_checkpoint restores the checkpoint order.)"""

    def __init__(self, config, params, ctx):
        super().__init__()
        self.config = config
        self.ctx = ctx
        self.params = torch.nn.ParameterDict({k: torch.nn.Parameter(t) for k, t in params.items()})
        self.attention_names = [s.name for s in attention_specs(ctx.variant, config, ctx.options)]
        self.decay = {s.name: s.decay for s in parameter_specs(ctx.variant, config, ctx.options)}

    def forward(self, tokens):
        """Logits (B, T, Vp) over the padded vocabulary, as attnscope's classifier GEMM."""
        p, C = self.params, self.config.n_embd
        T = tokens.shape[1]
        x = F.embedding(tokens, p["wte"]) + p["wpe"][:T]
        for l in range(self.config.n_layer):
            self.ctx.layer = l
            h = F.layer_norm(x, (C,), p["ln1w"][l], p["ln1b"][l], eps=1e-5)
            x = x + attention_block(h, {n: p[n][l] for n in self.attention_names}, self.ctx)
            h = F.layer_norm(x, (C,), p["ln2w"][l], p["ln2b"][l], eps=1e-5)
            h = F.gelu(F.linear(h, p["fcw"][l], p["fcb"][l]), approximate="tanh")
            x = x + F.linear(h, p["fcprojw"][l], p["fcprojb"][l])
        x = F.layer_norm(x, (C,), p["lnfw"], p["lnfb"], eps=1e-5)
        return F.linear(x, p["wte"])

    def token_losses(self, tokens, targets):
        """Cross-entropy per token over the real vocabulary; the padded columns' logits get
        no gradient, as in attnscope's fused classifier."""
        V = self.config.vocab_size
        logits = self(tokens)
        return F.cross_entropy(logits[..., :V].reshape(-1, V), targets.reshape(-1), reduction="none")


# ---------------------------------------------------------------------------------------
# Optimizer: attnscope's AdamW (cl_kernels/adamw.cl, GPT2::update)
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class AdamWConfig:
    lr: float = 6e-4
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.1
    grad_clip: float = 1.0


def f32(x):
    """attnscope holds its hyper-parameters as float."""
    return float(np.float32(x))


class AttnscopeAdamW:
    """adamw.cl step for step: global L2 norm of all gradients; scale = clip/‖g‖ when
    ‖g‖ > clip > 0; then per parameter g·scale, m, v, bias corrections 1 − β^t computed in
    double and rounded to float, p −= lr·(m̂/(√v̂ + eps) + wd·p), wd only on matrices."""

    def __init__(self, model, hp):
        self.model, self.hp = model, hp
        self.state = {n: (torch.zeros_like(t), torch.zeros_like(t)) for n, t in model.params.items()}

    @torch.no_grad()
    def step(self, t, learning_rate):
        """Applies step t (from 1) at learning_rate; returns the gradient norm before clipping."""
        params = self.model.params
        norm = torch.sqrt(sum((params[n].grad * params[n].grad).sum() for n in params))
        clip = f32(self.hp.grad_clip)
        scale = clip / norm if 0 < clip < norm else 1.0

        def const(x):  # a float hyper-parameter, in the working dtype
            return torch.tensor(f32(x), dtype=norm.dtype, device=norm.device)

        beta1, beta2, lr, eps = const(self.hp.beta1), const(self.hp.beta2), const(learning_rate), const(self.hp.eps)
        m_correction = const(1.0 - f32(self.hp.beta1) ** t)
        v_correction = const(1.0 - f32(self.hp.beta2) ** t)
        for name, p in params.items():
            m, v = self.state[name]
            decay = const(self.hp.weight_decay if self.model.decay[name] else 0.0)
            g = p.grad * scale
            m.copy_(beta1 * m + (1 - beta1) * g)
            v.copy_(beta2 * v + (1 - beta2) * g * g)
            p.sub_(lr * ((m / m_correction) / (torch.sqrt(v / v_correction) + eps) + decay * p))
        return float(norm)


# ---------------------------------------------------------------------------------------
# Data: llm.c token shards, read in order as attnscope's TokenArrayLoader
# ---------------------------------------------------------------------------------------

SHARD_MAGIC, SHARD_VERSION = 20240520, 1


def read_shard(path):
    with open(path, "rb") as f:
        header = np.frombuffer(f.read(1024), dtype="<i4")
        if header.size != 256 or header[0] != SHARD_MAGIC or header[1] != SHARD_VERSION:
            raise ValueError(f"{path}: not an llm.c token shard")
        tokens = np.frombuffer(f.read(), dtype="<u2")
    if tokens.size != header[2]:
        raise ValueError(f"{path}: header says {header[2]} tokens, the file holds {tokens.size}")
    return tokens.astype(np.int64)


class TokenLoader:
    """Batch k is tokens [k·B·T, (k+1)·B·T + 1) (consecutive batches share a token),
    starting over at the beginning when the next window would run past the end."""

    def __init__(self, tokens, B, T, device):
        if tokens.size < B * T + 1:
            raise ValueError(f"{tokens.size} tokens, fewer than one batch needs ({B * T + 1})")
        self.tokens, self.B, self.T, self.device = tokens, B, T, device
        self.position = 0

    def reset(self):
        self.position = 0

    def next_batch(self):
        n = self.B * self.T + 1
        if self.position + n > self.tokens.size:
            self.position = 0
        window = torch.from_numpy(self.tokens[self.position:self.position + n]).to(self.device)
        self.position += n - 1
        return window[:-1].view(self.B, self.T), window[1:].view(self.B, self.T)


def make_loaders(data, val_data, B, T, vocab_size, device):
    """attnscope's file_data: without --val-data the last 10% is held out."""
    train = read_shard(data)
    if train.size and train.max() >= vocab_size:
        raise ValueError(f"{data}: token {train.max()} is outside the vocabulary ({vocab_size})")
    if val_data:
        return TokenLoader(train, B, T, device), TokenLoader(read_shard(val_data), B, T, device)
    split = train.size - train.size // 10
    return TokenLoader(train[:split], B, T, device), TokenLoader(train[split:], B, T, device)


# ---------------------------------------------------------------------------------------
# Device settings and GPU energy
# ---------------------------------------------------------------------------------------


def set_precision(precision):
    """fp32: IEEE float32 matmuls and convolutions; tf32: tensor cores' TF32 allowed."""
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class NvmlEnergy:
    """NVML's total-energy counter (mJ since the driver loaded) of the torch device's GPU,
    through pynvml where it is importable, else ctypes as tools/nvml_energy.py.
    read() gives None when it cannot be read, and `unavailable` says why."""

    def __init__(self, device):
        self._read, self.unavailable, self.source = None, None, None
        if device.type != "cuda":
            self.unavailable = "not a CUDA device"
            return
        bus_id = self._pci_bus_id(device)
        try:
            import pynvml
            pynvml.nvmlInit()
            handle = (pynvml.nvmlDeviceGetHandleByPciBusId(bus_id.encode()) if bus_id
                      else pynvml.nvmlDeviceGetHandleByIndex(self._nvml_index(device)))
            self._read = lambda: int(pynvml.nvmlDeviceGetTotalEnergyConsumption(handle))
            self.source = "pynvml"
        except Exception as pynvml_error:  # ImportError or any NVMLError
            try:
                self._read = self._ctypes_reader(device, bus_id)
                self.source = "ctypes libnvidia-ml.so.1"
            except (OSError, RuntimeError) as error:
                self.unavailable = f"NVML energy counter: pynvml: {pynvml_error}; ctypes: {error}"
                return
        self.read()

    def read(self):
        """The counter in mJ, or None."""
        if self._read is None:
            return None
        try:
            return self._read()
        except Exception as error:  # NVMLError, RuntimeError: this window goes unmeasured
            self.unavailable = f"NVML energy counter unreadable: {error}"
            return None

    @staticmethod
    def _pci_bus_id(device):
        """NVML's bus id of the torch device where torch exposes it (2.x), else None."""
        props = torch.cuda.get_device_properties(device)
        if not all(hasattr(props, a) for a in ("pci_domain_id", "pci_bus_id", "pci_device_id")):
            return None
        return f"{props.pci_domain_id:08X}:{props.pci_bus_id:02X}:{props.pci_device_id:02X}.0"

    @staticmethod
    def _nvml_index(device):
        """CUDA_VISIBLE_DEVICES renumbers the devices torch sees; NVML sees them all."""
        index = device.index or 0
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
        return int(visible[index]) if index < len(visible) and visible[index].strip().isdigit() else index

    def _ctypes_reader(self, device, bus_id):
        lib = ctypes.CDLL("libnvidia-ml.so.1")

        def call(name, *args):
            status = getattr(lib, name)(*args)
            if status != 0:
                lib.nvmlErrorString.restype = ctypes.c_char_p
                raise RuntimeError(f"{name} failed: {lib.nvmlErrorString(status).decode()}")

        call("nvmlInit_v2")
        handle = ctypes.c_void_p()
        if bus_id:
            call("nvmlDeviceGetHandleByPciBusId_v2", bus_id.encode(), ctypes.byref(handle))
        else:
            call("nvmlDeviceGetHandleByIndex_v2", self._nvml_index(device), ctypes.byref(handle))
        energy = ctypes.c_ulonglong()

        def read():
            call("nvmlDeviceGetTotalEnergyConsumption", handle, ctypes.byref(energy))
            return int(energy.value)
        return read


# ---------------------------------------------------------------------------------------
# CSV output
# ---------------------------------------------------------------------------------------

# attnscope's columns (host/results_dir.cpp, documented in README), in its order, so that
# `attnscope merge` combines the twin's directories with attnscope's; the cells the twin
# does not measure stay empty.
STEPS_COLUMNS = ["framework", "variant", "batch", "seq", "repeat", "step", "phase", "loss", "val_loss",
                 "grad_norm", "lr", "step_ms", "tokens_per_s", "gpu_energy_j", "gpu_mean_w", "gpu_energy_method",
                 "cpu_energy_j", "cpu_time_s", "cpu_util", "device_mem_allocated_bytes",
                 "device_mem_used_bytes"]

SUMMARY_COLUMNS = ["framework", "variant", "batch", "seq", "repeat", "order", "status", "reason", "options",
                   "precision", "attention_backward", "steps_measured", "train_time_s", "step_ms_median", "step_ms_iqr",
                   "tokens_per_s_median", "tokens_per_s_iqr", "model_flops_per_step",
                   "executed_flops_per_step", "achieved_tflops", "mfu", "planned_mem_bytes", "peak_mem_allocated_bytes",
                   "peak_mem_used_bytes", "gpu_energy_j", "gpu_energy_net_j", "gpu_j_per_token", "gpu_mean_w",
                   "gpu_peak_w", "gpu_idle_w", "gpu_energy_method", "gpu_counter_j", "gpu_sampled_j",
                   "cpu_time_s", "cpu_util", "cpu_energy_j", "cpu_energy_net_j", "final_train_loss",
                   "final_val_loss", "target_loss", "time_to_target_s", "energy_to_target_j"]

KERNELS_COLUMNS = ["variant", "batch", "seq", "repeat", "kernel", "calls", "total_ms", "share", "gflops_per_s",
                   "gb_per_s"]
POWER_COLUMNS = ["time_s", "source", "watts", "memory_used_bytes", "utilization_percent", "clock_mhz",
                 "temperature_c"]


def cell(value):
    """attnscope's CSV convention: floats as %.9g, None as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.9g}"
    return str(value)


class CsvFile:
    """A CSV written row by row and flushed, so an interrupted run keeps what it measured."""

    def __init__(self, path, columns):
        self.columns = columns
        self.file = open(path, "w", newline="")
        self.writer = csv.writer(self.file, lineterminator="\n")
        self.writer.writerow(columns)

    def write(self, **row):
        unknown = set(row) - set(self.columns)
        if unknown:
            raise KeyError(f"no such columns: {sorted(unknown)}")
        self.writer.writerow([cell(row.get(c)) for c in self.columns])
        self.file.flush()


def device_memory(device):
    return torch.cuda.memory_allocated(device) if device.type == "cuda" else None


def framework_name(impl, dtype="float32"):
    """The `framework` column: the PyTorch path, and the dtype where it is not float32."""
    return f"torch-{impl}" + ("" if dtype == "float32" else f"-{dtype}")


# ---------------------------------------------------------------------------------------
# train: the twin of `attnscope train --load --data`
# ---------------------------------------------------------------------------------------


def scheduled_lr(args, step, total_steps):
    """attnscope's learning rate at step (from 1) of total_steps, in float32 as
    model/lr_schedule.cpp computes it: linear warm-up over --warmup-steps, then --lr-decay
    (cosine, linear or none) down to --min-lr-frac of --lr."""
    peak, s, warmup = np.float32(args.lr), step - 1, args.warmup_steps
    if s < warmup:
        return float(peak * np.float32(s + 1) / np.float32(warmup))
    if args.lr_decay == "none":
        return float(peak)
    r = np.float32(min(max(np.float32(s - warmup) / np.float32(max(1, total_steps - warmup)), 0), 1))
    min_lr = peak * np.float32(args.min_lr_frac)
    if args.lr_decay == "linear":
        return float(peak - r * (peak - min_lr))
    coeff = np.float32(0.5) * (np.float32(1) + np.cos(np.float32(math.pi) * r, dtype=np.float32))
    return float(min_lr + coeff * (peak - min_lr))


def train_step(model, optimizer, inputs, targets, step, learning_rate):
    """One step: forward, mean loss, backward, AdamW. Returns (loss, grad_norm); the loss
    is the mean of the float per-token losses, summed in double as attnscope reads it."""
    model.ctx.step = step
    for p in model.params.values():
        p.grad = None
    losses = model.token_losses(inputs, targets)
    losses.mean().backward()
    grad_norm = optimizer.step(step, learning_rate)
    return float(losses.detach().double().mean()), grad_norm


@torch.no_grad()
def validation_loss(model, loader, batches):
    """Mean over the same held-out batches every time, forward at step 0 as attnscope's
    evaluate()."""
    model.ctx.step = 0
    loader.reset()
    total = 0.0
    for _ in range(batches):
        inputs, targets = loader.next_batch()
        total += float(model.token_losses(inputs, targets).double().mean())
    return total / batches


def run_train(args):
    device = torch.device(args.device)
    set_precision(args.precision)
    dtype = {"float32": torch.float32, "float64": torch.float64}[args.dtype]
    ckpt = read_checkpoint(args.load)
    config = ckpt.config
    if args.seq > config.max_seq_len:
        raise ValueError(f"--seq {args.seq} exceeds the checkpoint's max sequence length {config.max_seq_len}")
    options = resolve_options(args.variant, config, args.seq, variant_options(args))
    replay = LshBucketReplay(args.lsh_buckets_from, args.lsh_flips_csv) if args.lsh_buckets_from else None
    ctx = AttentionContext(args.variant, options, config.n_head, impl=args.attn_impl, exact_hash=True,
                           bucket_replay=replay)
    model = GPT2(config, unpack_parameters(ckpt, args.variant, options, dtype, device), ctx)
    optimizer = AttnscopeAdamW(model, adamw_config(args))
    train_loader, val_loader = make_loaders(args.data, args.val_data, args.batch, args.seq, config.vocab_size, device)
    framework = framework_name(args.attn_impl, args.dtype)
    print(f"{framework} on {device}: L={config.n_layer} H={config.n_head} C={config.n_embd} "
          f"vocab={config.vocab_size} (padded {config.padded_vocab_size}); {args.variant} "
          f"({describe_options(args.variant, options)}); B={args.batch} T={args.seq}; loaded {args.load}")
    steps_csv = CsvFile(args.steps_csv, STEPS_COLUMNS) if args.steps_csv else None
    for step in range(1, args.steps + 1):
        inputs, targets = train_loader.next_batch()
        synchronize(device)
        wall, cpu = time.perf_counter(), time.process_time()
        lr = scheduled_lr(args, step, args.steps)
        loss, grad_norm = train_step(model, optimizer, inputs, targets, step, lr)
        synchronize(device)
        seconds, cpu_s = time.perf_counter() - wall, time.process_time() - cpu
        if not math.isfinite(loss):
            raise RuntimeError(f"training loss became {loss} at step {step}")
        val = None
        if args.val_every > 0 and step % args.val_every == 0:
            val = validation_loss(model, val_loader, args.val_batches)
        print(f"step {step:5d}/{args.steps} | loss {loss:.6f} | grad norm {grad_norm:.4f} | "
              f"{seconds * 1e3:8.2f} ms" + (f" | val {val:.6f}" if val is not None else ""), flush=True)
        if steps_csv:
            steps_csv.write(variant=args.variant, batch=args.batch, seq=args.seq, repeat=0, step=step,
                            phase="measured", loss=loss, val_loss=val, grad_norm=grad_norm, lr=lr,
                            step_ms=seconds * 1e3, tokens_per_s=args.batch * args.seq / seconds,
                            cpu_time_s=cpu_s, cpu_util=cpu_s / seconds,
                            device_mem_allocated_bytes=device_memory(device), framework=framework)
    if args.val_every <= 0 or args.steps % args.val_every:
        print(f"step {args.steps:5d} | validation loss {validation_loss(model, val_loader, args.val_batches):.6f}")
    if args.save:
        write_checkpoint(args.save, config, args.variant, options, model.params)
        print(f"saved {args.save}")
    return 0


# ---------------------------------------------------------------------------------------
# bench: GPT-2 on random tokens, every variant, timed and metered
# ---------------------------------------------------------------------------------------


def fused_adamw_available(device):
    """Whether this PyTorch has a fused AdamW for this device (2.x on CUDA)."""
    try:
        torch.optim.AdamW([torch.zeros(1, device=device, requires_grad=True)], fused=True)
        return True
    except (TypeError, RuntimeError, ValueError):
        return False


def torch_adamw(model, hp, fused):
    """PyTorch's own AdamW, decay on matrices only, as a PyTorch user would train: this is
    the framework measured (the twin's exact AttnscopeAdamW is for replaying losses)."""
    groups = [{"params": [p for n, p in model.params.items() if model.decay[n]], "weight_decay": hp.weight_decay},
              {"params": [p for n, p in model.params.items() if not model.decay[n]], "weight_decay": 0.0}]
    kwargs = dict(lr=hp.lr, betas=(hp.beta1, hp.beta2), eps=hp.eps)
    return torch.optim.AdamW(groups, fused=True, **kwargs) if fused else torch.optim.AdamW(groups, **kwargs)


def bench_variant(args, variant, config, device, energy, fused, steps_csv):
    """Trains one variant for warmup + steps steps; returns its summary row."""
    framework = framework_name(args.attn_impl)
    row = dict(framework=framework, precision=args.precision, variant=variant, batch=args.batch,
               seq=args.seq, repeat=0, steps_measured=args.steps, status="ok")
    try:
        options = resolve_options(variant, config, args.seq, variant_options(args))
        row["options"] = describe_options(variant, options)
        ctx = AttentionContext(variant, options, config.n_head, impl=args.attn_impl, exact_hash=False)
        if device.type == "cuda":  # the previous variant's memory is freed before its peak is reset
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        model = GPT2(config, init_parameters(variant, config, options, device, args.seed), ctx)
        hp = adamw_config(args)
        optimizer = torch_adamw(model, hp, fused)
        generator = torch.Generator(device=device)
        generator.manual_seed(args.seed)
        tokens = torch.randint(0, config.vocab_size, (args.warmup + args.steps, args.batch, args.seq + 1),
                               device=device, generator=generator)
        step_ms, loss = [], None
        for i in range(args.warmup + args.steps):
            synchronize(device)
            if i == args.warmup:  # the measured window opens
                begin_s, begin_cpu, begin_mj = time.perf_counter(), time.process_time(), energy.read()
            start = time.perf_counter()
            ctx.step = i + 1
            optimizer.zero_grad(set_to_none=True)
            batch = tokens[i]
            losses = model.token_losses(batch[:, :-1], batch[:, 1:])
            losses.mean().backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), hp.grad_clip)
            optimizer.step()
            loss = float(losses.detach().mean())  # blocking read-back, as attnscope's step
            synchronize(device)
            ms = (time.perf_counter() - start) * 1e3
            phase = "measured" if i >= args.warmup else "warmup"
            if phase == "measured":
                step_ms.append(ms)
            steps_csv.write(variant=variant, batch=args.batch, seq=args.seq, repeat=0, step=i + 1, phase=phase,
                            loss=loss, grad_norm=float(grad_norm), lr=hp.lr, step_ms=ms,
                            tokens_per_s=args.batch * args.seq / (ms / 1e3),
                            device_mem_allocated_bytes=device_memory(device), framework=framework)
            if sys.stdout.isatty():
                print(f"\r{variant:>14}: step {i + 1}/{args.warmup + args.steps} loss {loss:.4f} {ms:8.1f} ms",
                      end="", flush=True)
        synchronize(device)
        end_s, end_mj = time.perf_counter(), energy.read()
        window_s, cpu_s = end_s - begin_s, time.process_time() - begin_cpu
        tokens_measured = args.steps * args.batch * args.seq
        tokens_per_s = [args.batch * args.seq / (ms / 1e3) for ms in step_ms]
        row.update(step_ms_median=statistics.median(step_ms), step_ms_iqr=iqr(step_ms),
                   tokens_per_s_iqr=iqr(tokens_per_s),
                   tokens_per_s_median=args.batch * args.seq / (statistics.median(step_ms) / 1e3),
                   cpu_time_s=cpu_s, cpu_util=cpu_s / window_s,
                   train_time_s=sum(step_ms) / 1e3, final_train_loss=loss)
        print(f"\r{variant:>14}: median step {row['step_ms_median']:.1f} ms, "
              f"{row['tokens_per_s_median']:.0f} tokens/s, final loss {loss:.4f}", flush=True)
        if device.type == "cuda":
            row["peak_mem_allocated_bytes"] = torch.cuda.max_memory_allocated(device)
        if begin_mj is None or end_mj is None:
            row["gpu_energy_unavailable"] = energy.unavailable
        elif end_mj <= begin_mj:
            row["gpu_energy_unavailable"] = f"NVML energy counter did not advance over {window_s:.2f} s"
        else:
            joules = (end_mj - begin_mj) / 1e3
            row.update(gpu_energy_j=joules, gpu_j_per_token=joules / tokens_measured,
                       gpu_mean_w=joules / window_s, gpu_energy_method="counter")
    except (RuntimeError, ValueError) as error:  # out of memory, bad options: the bench goes on
        row.update(status="failed", reason=str(error).splitlines()[0][:300])
        print(f"\r{variant:>14}: failed: {row['reason']}", flush=True)
    return row


def iqr(values):
    quartiles = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return quartiles[2] - quartiles[0]


def print_summary(rows):
    header = f"{'framework':<12} {'prec':<5} {'variant':<15} {'B':>3} {'T':>5} {'step ms':>9} " \
             f"{'tokens/s':>10} {'peak GiB':>9} {'GPU J':>9} {'mJ/token':>9}  status"
    print(header)
    print("-" * len(header))

    def fmt(value, spec):  # an empty cell prints as "-"
        return format(value, spec) if value is not None else "-".rjust(int(spec.split(".")[0]))

    for r in rows:
        peak = r.get("peak_mem_allocated_bytes")
        per_token = r.get("gpu_j_per_token")
        print(f"{r['framework']:<12} {r['precision']:<5} {r['variant']:<15} {r['batch']:>3} {r['seq']:>5} "
              f"{fmt(r.get('step_ms_median'), '9.1f')} {fmt(r.get('tokens_per_s_median'), '10.0f')} "
              f"{fmt(peak / 2**30 if peak else None, '9.2f')} {fmt(r.get('gpu_energy_j'), '9.1f')} "
              f"{fmt(per_token * 1e3 if per_token else None, '9.2f')}  {r['status']} {r.get('reason') or ''}")
    reasons = {r["gpu_energy_unavailable"] for r in rows if r.get("gpu_energy_unavailable")}
    for reason in reasons:
        print(f"GPU energy unavailable: {reason}")


def run_bench(args):
    device = torch.device(args.device)
    set_precision(args.precision)
    config = preset_config(args.model, args.max_seq)
    if args.seq > config.max_seq_len:
        raise ValueError(f"--seq {args.seq} exceeds the model's max sequence length {config.max_seq_len}")
    variants = VARIANTS if args.variants == "all" else tuple(args.variants.split(","))
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown} (choose from {', '.join(VARIANTS)} or all)")
    os.makedirs(args.out, exist_ok=True)
    energy = NvmlEnergy(device)
    fused = fused_adamw_available(device)
    manifest = {
        "command": sys.argv, "framework": framework_name(args.attn_impl), "precision": args.precision,
        "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
        "host": platform.node(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "model": dataclasses.asdict(config), "preset": args.model,
        "optimizer": {**dataclasses.asdict(adamw_config(args)),
                      "implementation": "torch.optim.AdamW" + (" (fused)" if fused else ""),
                      "clipping": "torch.nn.utils.clip_grad_norm_"},
        "data": f"uniform random tokens (seed {args.seed})",
        "gpu_energy": energy.source or None, "unavailable": {}, "completed": False,
    }
    if energy.unavailable:
        manifest["unavailable"]["gpu_energy_j"] = energy.unavailable
    if device.type != "cuda":
        manifest["unavailable"]["peak_mem_allocated_bytes"] = "not a CUDA device"
    summary = CsvFile(os.path.join(args.out, "summary.csv"), SUMMARY_COLUMNS)
    steps_csv = CsvFile(os.path.join(args.out, "steps.csv"), STEPS_COLUMNS)
    # A results directory has all four CSVs (`attnscope merge` checks); the twin profiles no
    # kernels and samples no power series, so these two hold their headers only.
    for name, columns in (("kernels.csv", KERNELS_COLUMNS), ("power.csv", POWER_COLUMNS)):
        CsvFile(os.path.join(args.out, name), columns).file.close()
    rows = []
    for order, variant in enumerate(variants):
        rows.append(bench_variant(args, variant, config, device, energy, fused, steps_csv))
        rows[-1]["order"] = order
        summary.write(**{k: v for k, v in rows[-1].items() if k in SUMMARY_COLUMNS})
        if rows[-1].get("gpu_energy_unavailable"):
            manifest["unavailable"]["gpu_energy_j"] = rows[-1]["gpu_energy_unavailable"]
    manifest["completed"] = True
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    print_summary(rows)
    print(f"results: {args.out}")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


# ---------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------


def variant_options(args):
    return VariantOptions(kv_heads=args.kv_heads, latent_dim=args.latent_dim, chunk=args.chunk,
                          window=args.window, hashes=args.hashes, buckets=args.buckets, seed=args.seed)


def adamw_config(args):
    return AdamWConfig(lr=args.lr, beta1=args.beta1, beta2=args.beta2, eps=args.eps,
                       weight_decay=args.weight_decay, grad_clip=args.grad_clip)


def add_common_options(p):
    """Options shared with attnscope (same names and defaults)."""
    p.add_argument("--batch", "-B", type=int, default=4)
    p.add_argument("--seq", "-T", type=int, default=64)
    p.add_argument("--seed", type=int, default=1337, help="initial weights (bench), LSH rotations, tokens (bench)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", choices=("fp32", "tf32"), default="fp32",
                   help="fp32: no TF32 anywhere; tf32: TF32 matmuls and convolutions (CUDA)")
    p.add_argument("--attn-impl", choices=("eager", "sdpa"), default="eager",
                   help="exact attention as written (eager) or F.scaled_dot_product_attention; "
                        "linear and lsh always run their eager math")
    for flag, default, help_text in (("--kv-heads", 0, "gqa: K/V heads (default n_head/4)"),
                                     ("--latent-dim", 0, "mla: latent width (default 4 x head size)"),
                                     ("--chunk", 64, "linear: chunk length; lsh: keys per chunk c"),
                                     ("--window", 256, "sliding_window: window w"),
                                     ("--hashes", 2, "lsh: hash rounds"),
                                     ("--buckets", 0, "lsh: buckets, even (default max(2, T/64))")):
        p.add_argument(flag, type=int, default=default, help=help_text)
    for flag, default in (("--lr", 6e-4), ("--beta1", 0.9), ("--beta2", 0.95), ("--eps", 1e-8),
                          ("--weight-decay", 0.1), ("--grad-clip", 1.0)):
        p.add_argument(flag, type=float, default=default)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    bench = commands.add_parser("bench", help="time every variant on random tokens")
    add_common_options(bench)
    bench.add_argument("--model", choices=sorted(PRESETS), default="gpt2")
    bench.add_argument("--max-seq", type=int, help="override the preset's max sequence length")
    bench.add_argument("--variants", default="all", help="comma-separated variants, or all")
    bench.add_argument("--steps", type=int, default=20, help="measured steps")
    bench.add_argument("--warmup", type=int, default=3, help="steps before the measured ones")
    bench.add_argument("--out", required=True, help="directory for summary.csv, steps.csv, manifest.json")

    train = commands.add_parser("train", help="replay `attnscope train --load --data` step for step")
    add_common_options(train)
    train.add_argument("--load", required=True, help="attnscope/llm.c checkpoint")
    train.add_argument("--data", required=True, help="llm.c token shard")
    train.add_argument("--val-data", help="held-out shard (default: the last 10%% of --data)")
    train.add_argument("--variant", choices=VARIANTS, default="baseline")
    train.add_argument("--steps", type=int, default=50)
    train.add_argument("--val-every", type=int, default=0, help="validation every N steps (0: at the end)")
    train.add_argument("--val-batches", type=int, default=4)
    train.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    train.add_argument("--steps-csv", help="write every step's row here")
    train.add_argument("--warmup-steps", type=int, default=0, help="linear learning-rate warm-up (attnscope's)")
    train.add_argument("--lr-decay", choices=("none", "linear", "cosine"), default="none",
                       help="decay after the warm-up, to --min-lr-frac of --lr at the last step")
    train.add_argument("--min-lr-frac", type=float, default=0.0)
    train.add_argument("--save", help="write the final weights here (attnscope's format)")
    train.add_argument("--lsh-buckets-from", metavar="DIR",
                       help="lsh: use the bucket ids attnscope dumped to DIR (ATTNSCOPE_LSH_BUCKETS) "
                            "instead of the twin's own argmax")
    train.add_argument("--lsh-flips-csv", metavar="FILE",
                       help="with --lsh-buckets-from: per pass and layer, how many of the twin's own "
                            "bucket assignments differ from attnscope's")

    args = parser.parse_args(argv)
    if args.batch < 1 or args.seq < 1 or args.steps < (1 if args.command == "bench" else 0):
        parser.error("--batch, --seq and --steps must be positive")
    if args.command == "train" and args.lsh_buckets_from and args.variant != "lsh":
        parser.error(f"--lsh-buckets-from replays lsh's buckets; the variant is {args.variant}")
    if args.command == "train" and args.lsh_flips_csv and not args.lsh_buckets_from:
        parser.error("--lsh-flips-csv counts flips against --lsh-buckets-from; give both")
    if args.attn_impl == "sdpa" and not hasattr(F, "scaled_dot_product_attention"):
        parser.error(f"--attn-impl sdpa needs PyTorch 2.0 or later, this is {torch.__version__}")
    try:
        return run_bench(args) if args.command == "bench" else run_train(args)
    except (ValueError, OSError) as error:
        print(f"torch_twin.py: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

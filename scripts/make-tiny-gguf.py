#!/usr/bin/env python3
"""Write a tiny llama-architecture GGUF for tests against a real llama-server.

usage: make-tiny-gguf.py OUT.gguf [--layers N --embd N --heads N --kv-heads N --ff N]

Random weights (seeded: the same inputs give the same bytes), by default 2 layers, hidden 64,
4 query heads over 2 KV heads, context 32768. The shape flags write a bigger model of the same
kind for GPU runs (`scripts/gpu-h200.sh`: 24 layers, hidden 2048, 16 heads over 8 KV heads,
FFN 5632 — 1.17 B parameters, 2.3 GB in F16); weights then shrink with the width
(std × sqrt(64 / hidden)) so activations stay in the tiny model's range. Its vocabulary is the repository's shipped tokenizer
(assets/tokenizer/tokenizer.json: byte-level BPE, 8,192 tokens, `<|endoftext|>` as BOS and
EOS, the ChatML template of tokenizer_config.json), declared as tokenizer model "gpt2" with
pre-tokenizer "gpt-2" so llama.cpp splits text with the GPT-2 regex exactly as the
`tokenizers` ByteLevel pre-tokenizer does; the ids llama-server's /tokenize returns for
ordinary text equal ours.

The output layer keeps generation away from tokens whose bytes are not complete UTF-8 on
their own (byte-level pieces of multi-byte characters) and from the special tokens: a
streamed chunk made of such a token would carry empty text. Hidden dimension 0 carries a
constant (set in the embedding, never written by attention or the MLP), and the output
rows of those tokens weigh it strongly negative, which acts as a per-token logit bias.

Needs numpy and PyPI `gguf` (scripts/llama-server.sh installs both in a venv).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import gguf

REPO = Path(__file__).resolve().parent.parent
TOKENIZER = REPO / "assets" / "tokenizer"

SEED = 20251122
N_LAYER = 2
N_EMBD = 64
N_HEAD = 4
N_HEAD_KV = 2
N_FF = 128
N_CTX = 32768
RMS_EPS = 1e-5
ROPE_THETA = 10000.0

BIAS_DIM = 0  # the hidden dimension that carries the constant
BIAS_VALUE = 4.0  # its value in every token embedding
BAD_WEIGHT = -8.0  # output weight on it for tokens that must not be generated


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte ↔ printable-character table used by byte-level BPE."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def load_vocab() -> tuple[list[str], list[int], list[str], set[int], dict]:
    tok = json.loads((TOKENIZER / "tokenizer.json").read_text(encoding="utf-8"))
    config = json.loads((TOKENIZER / "tokenizer_config.json").read_text(encoding="utf-8"))
    model = tok["model"]
    if model["type"] != "BPE" or tok["pre_tokenizer"]["type"] != "ByteLevel":
        sys.exit("make-tiny-gguf: expected a byte-level BPE tokenizer.json")

    by_id: dict[int, str] = {}
    for text, i in model["vocab"].items():
        by_id[i] = text
    special: set[int] = set()
    for added in tok["added_tokens"]:
        by_id[added["id"]] = added["content"]
        if added["special"]:
            special.add(added["id"])
    n_vocab = max(by_id) + 1
    missing = [i for i in range(n_vocab) if i not in by_id]
    if missing:
        sys.exit(f"make-tiny-gguf: vocabulary has holes at ids {missing[:5]}")
    tokens = [by_id[i] for i in range(n_vocab)]
    types = [
        gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL
        for i in range(n_vocab)
    ]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    return tokens, types, merges, special, config


def unusable(tokens: list[str], special: set[int]) -> np.ndarray:
    """Mask of tokens that must never be sampled: specials and incomplete UTF-8."""
    decode = {c: b for b, c in bytes_to_unicode().items()}
    mask = np.zeros(len(tokens), dtype=bool)
    for i, text in enumerate(tokens):
        if i in special:
            mask[i] = True
            continue
        try:
            bytes(decode[c] for c in text).decode("utf-8")
        except (KeyError, UnicodeDecodeError):
            mask[i] = True
    return mask


def main() -> None:
    global N_LAYER, N_EMBD, N_HEAD, N_HEAD_KV, N_FF
    ap = argparse.ArgumentParser(description="Write a random-weight llama GGUF.")
    ap.add_argument("out", help="the GGUF file to write")
    ap.add_argument("--layers", type=int, default=N_LAYER)
    ap.add_argument("--embd", type=int, default=N_EMBD)
    ap.add_argument("--heads", type=int, default=N_HEAD)
    ap.add_argument("--kv-heads", type=int, default=N_HEAD_KV)
    ap.add_argument("--ff", type=int, default=N_FF)
    ap.add_argument("--name", default="infmax-tiny-random")
    a = ap.parse_args()
    if a.embd % a.heads or a.heads % a.kv_heads or a.embd <= BIAS_DIM:
        sys.exit("make-tiny-gguf: hidden must divide into heads, heads into KV heads")
    out = a.out
    N_LAYER, N_EMBD, N_HEAD, N_HEAD_KV, N_FF = a.layers, a.embd, a.heads, a.kv_heads, a.ff
    # 1 for the tiny model (its bytes stay as they were); smaller for wider models.
    scale = (64 / N_EMBD) ** 0.5

    tokens, types, merges, special, config = load_vocab()
    n_vocab = len(tokens)
    bos = eos = tokens.index(config["eos_token"])
    head_dim = N_EMBD // N_HEAD

    w = gguf.GGUFWriter(out, "llama")
    w.add_name(a.name)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_vocab_size(n_vocab)
    w.add_context_length(N_CTX)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(ROPE_THETA)
    w.add_layer_norm_rms_eps(RMS_EPS)

    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(bos)
    w.add_eos_token_id(eos)
    w.add_pad_token_id(tokens.index(config.get("pad_token") or config["eos_token"]))
    w.add_add_bos_token(bool(config.get("add_bos_token", False)))
    w.add_add_eos_token(bool(config.get("add_eos_token", False)))
    w.add_chat_template(config["chat_template"])

    rng = np.random.default_rng(SEED)

    def normal(shape: tuple[int, ...], std: float) -> np.ndarray:
        return (rng.standard_normal(shape) * (std * scale)).astype(np.float32)

    def f16(a: np.ndarray) -> np.ndarray:
        return a.astype(np.float16)

    ones = np.ones(N_EMBD, dtype=np.float32)
    # numpy shapes are ggml's reversed: a weight is (out_features, in_features).
    embd = normal((n_vocab, N_EMBD), 0.5)
    embd[:, BIAS_DIM] = BIAS_VALUE
    w.add_tensor("token_embd.weight", f16(embd))
    for layer in range(N_LAYER):
        p = f"blk.{layer}."
        attn_out = normal((N_EMBD, N_EMBD), 0.1)
        ffn_down = normal((N_EMBD, N_FF), 0.1)
        attn_out[BIAS_DIM, :] = 0.0  # the residual stream keeps the constant intact
        ffn_down[BIAS_DIM, :] = 0.0
        w.add_tensor(p + "attn_norm.weight", ones)
        w.add_tensor(p + "attn_q.weight", f16(normal((N_HEAD * head_dim, N_EMBD), 0.2)))
        w.add_tensor(p + "attn_k.weight", f16(normal((N_HEAD_KV * head_dim, N_EMBD), 0.2)))
        w.add_tensor(p + "attn_v.weight", f16(normal((N_HEAD_KV * head_dim, N_EMBD), 0.2)))
        w.add_tensor(p + "attn_output.weight", f16(attn_out))
        w.add_tensor(p + "ffn_norm.weight", ones)
        w.add_tensor(p + "ffn_gate.weight", f16(normal((N_FF, N_EMBD), 0.2)))
        w.add_tensor(p + "ffn_up.weight", f16(normal((N_FF, N_EMBD), 0.2)))
        w.add_tensor(p + "ffn_down.weight", f16(ffn_down))
    w.add_tensor("output_norm.weight", ones)
    output = normal((n_vocab, N_EMBD), 0.5)
    output[:, BIAS_DIM] = 0.0
    output[unusable(tokens, special), BIAS_DIM] = BAD_WEIGHT
    w.add_tensor("output.weight", f16(output))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()

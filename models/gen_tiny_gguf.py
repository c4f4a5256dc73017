#!/usr/bin/env python3
"""Write a tiny random-weight llama GGUF for tests (~220 KB).

    python3 models/gen_tiny_gguf.py OUT.gguf [--seed N] [--no-chat-template] [--context-length N]

The file is a real llama-architecture GGUF v3 that llama.cpp loads and generates from: two
transformer blocks, 32-wide embeddings, a SentencePiece-style ("llama") tokenizer whose
vocabulary has the control tokens <unk>, <s>, </s>, <|im_start|>, <|im_end|>, all 256 byte
tokens (so any text tokenizes) and a few hundred printable pieces. Its metadata carries a
ChatML chat template unless --no-chat-template is given.

The output head gives control and byte tokens zero logits while ordinary pieces get large
random ones, so generation practically never ends by itself: tests get as many tokens as
they ask for (max_tokens), which makes streaming and cancellation tests deterministic.

Deterministic: the same seed and options always give the same bytes.
Needs the PyPI packages `gguf` and `numpy`.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

try:
    import gguf
except ImportError:  # pragma: no cover - message for people without the package
    sys.exit("gen_tiny_gguf.py needs the `gguf` and `numpy` packages: pip install gguf numpy")

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

N_EMBD = 32
N_HEAD = 2
N_HEAD_KV = 2
N_LAYER = 2
N_FF = 64

# gguf token types
NORMAL, UNKNOWN, CONTROL, BYTE = 1, 2, 3, 6


def vocabulary() -> tuple[list[str], list[float], list[int]]:
    tokens: list[str] = []
    scores: list[float] = []
    types: list[int] = []

    def add(text: str, score: float, kind: int) -> None:
        tokens.append(text)
        scores.append(score)
        types.append(kind)

    add("<unk>", 0.0, UNKNOWN)
    add("<s>", 0.0, CONTROL)
    add("</s>", 0.0, CONTROL)
    add("<|im_start|>", 0.0, CONTROL)
    add("<|im_end|>", 0.0, CONTROL)
    for byte in range(256):
        add(f"<0x{byte:02X}>", 0.0, BYTE)
    pieces: list[str] = ["\u2581"]
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    pieces += list(letters)
    pieces += list(".,!?'-:;()")
    pieces += ["\u2581" + c for c in letters]
    words = (
        "the of and to in is you that it he was for on are as with his they at be this "
        "have from or one had by word but not what all were we when your can said there use "
        "an each which she do how their if will up other about out many then them these so "
        "some her would make like him into time has look two more write go see number no way "
        "could people my than first water been call who oil its now find long down day did "
        "get come made may part hello world baton model paris france capital answer"
    ).split()
    pieces += ["\u2581" + w for w in words]
    seen = set(tokens)
    score = -1.0
    for piece in pieces:
        if piece in seen:
            continue
        seen.add(piece)
        # Longer pieces score higher so the tokenizer prefers them.
        add(piece, score + len(piece), NORMAL)
        score -= 0.001
    return tokens, scores, types


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="write a tiny random-weight llama GGUF")
    parser.add_argument("out", help="path of the GGUF file to write")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--no-chat-template", action="store_true",
                        help="leave tokenizer.chat_template out of the metadata")
    parser.add_argument("--context-length", type=int, default=2048,
                        help="llama.context_length in the metadata (default 2048)")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    tokens, scores, types = vocabulary()
    n_vocab = len(tokens)

    writer = gguf.GGUFWriter(args.out, "llama")
    writer.add_name("baton-tiny-llama")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_context_length(args.context_length)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD_KV)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(n_vocab)

    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(4)  # <|im_end|>, as in ChatML models
    writer.add_add_bos_token(False)
    writer.add_add_eos_token(False)
    if not args.no_chat_template:
        writer.add_chat_template(CHATML_TEMPLATE)

    def normal(*shape: int, scale: float) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    writer.add_tensor("token_embd.weight", normal(n_vocab, N_EMBD, scale=1.0))
    writer.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    head = normal(n_vocab, N_EMBD, scale=1.0)
    for index, kind in enumerate(types):
        if kind != NORMAL:
            head[index, :] = 0.0
    writer.add_tensor("output.weight", head)
    kv = N_EMBD // N_HEAD * N_HEAD_KV
    for layer in range(N_LAYER):
        prefix = f"blk.{layer}"
        writer.add_tensor(f"{prefix}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        writer.add_tensor(f"{prefix}.attn_q.weight", normal(N_EMBD, N_EMBD, scale=0.2))
        writer.add_tensor(f"{prefix}.attn_k.weight", normal(kv, N_EMBD, scale=0.2))
        writer.add_tensor(f"{prefix}.attn_v.weight", normal(kv, N_EMBD, scale=0.2))
        writer.add_tensor(f"{prefix}.attn_output.weight", normal(N_EMBD, N_EMBD, scale=0.2))
        writer.add_tensor(f"{prefix}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        writer.add_tensor(f"{prefix}.ffn_gate.weight", normal(N_FF, N_EMBD, scale=0.2))
        writer.add_tensor(f"{prefix}.ffn_up.weight", normal(N_FF, N_EMBD, scale=0.2))
        writer.add_tensor(f"{prefix}.ffn_down.weight", normal(N_EMBD, N_FF, scale=0.2))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

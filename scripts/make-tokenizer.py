#!/usr/bin/env python3
"""Regenerate assets/tokenizer/{tokenizer.json,tokenizer_config.json}.

The tokenizer shipped with infmax: a byte-level BPE (GPT-2 pre-tokenizer and byte alphabet,
so any input encodes without unknown tokens) of 8,192 tokens, trained on the King James
Version of the Bible (public domain) as Debian's `bible-kjv` package ships it. Training is
deterministic: the same corpus gives the same file.

Requirements (registries only, no network beyond them):
    apt-get install -y bible-kjv      # the text and the `bible` program that decompresses it
    pip install 'tokenizers==0.22.*'

Usage: scripts/make-tokenizer.py [OUT_DIR]   (default assets/tokenizer)
"""
import json
import os
import subprocess
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

VOCAB_SIZE = 8192
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def corpus():
    """One verse per line, without the chapter headings and verse numbers `bible` prints."""
    out = subprocess.run(
        ["bible", "-l", "100000", "Gen1:1-Rev22:21"], check=True, capture_output=True, text=True
    ).stdout
    for line in out.splitlines():
        parts = line.strip().split(" ", 1)
        if len(parts) == 2 and parts[0].isdigit():
            yield parts[1]


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "assets", "tokenizer"
    )
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = list(corpus())
    assert len(lines) > 30000, f"corpus too small: {len(lines)} verses"
    tok.train_from_iterator(lines, trainer=trainer, length=len(lines))
    os.makedirs(out_dir, exist_ok=True)
    tok.save(os.path.join(out_dir, "tokenizer.json"), pretty=False)
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": 131072,
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": None,
        "pad_token": "<|endoftext|>",
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "chat_template": CHATML,
    }
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    print(f"vocab {tok.get_vocab_size()} from {len(lines)} verses -> {out_dir}")


if __name__ == "__main__":
    main()

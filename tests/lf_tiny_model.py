"""Build a tiny random Qwen2 model and its tokenizer in a folder, offline, for the LLaMA-Factory test.

Run with the LLaMA-Factory environment's Python (it needs transformers and tokenizers, which the
zerodeck venv does not carry): `python tests/lf_tiny_model.py OUT_DIR CORPUS.json`. The tokenizer is
a byte-level BPE trained on the alpaca records of CORPUS.json, with Qwen's chat special tokens so
LLaMA-Factory's `qwen` template finds them; the model is Qwen2-shaped (2 layers, hidden size 64).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def corpus_lines(path: Path) -> list[str]:
    lines = ["system", "user", "assistant", "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."]
    for row in json.loads(path.read_text(encoding="utf-8")):
        lines.extend(v for v in (row["instruction"], row["input"], row["output"]) if v)
    return lines


def build(out: Path, corpus: Path) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(corpus_lines(corpus), trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.save_pretrained(out)

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    Qwen2ForCausalLM(config).save_pretrained(out)


if __name__ == "__main__":
    build(Path(sys.argv[1]), Path(sys.argv[2]))

"""A tiny cross-encoder built at test time: a randomly initialised one-label BERT and a
word-level tokenizer of a few words, saved to a folder that the real loading code reads."""

from __future__ import annotations

from pathlib import Path

WORDS = ["red", "shoes", "blue", "hat", "running", "green", "boots", "wool", "cap"]


def write_tiny_cross_encoder(folder: Path) -> Path:
    """A randomly initialised one-label BERT and a word-level tokenizer of a few words."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n"
    )
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=5 + len(WORDS),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=1,
        initializer_range=1.0,  # large weights: scores that differ from pair to pair
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder

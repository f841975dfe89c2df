"""A tiny random Qwen2-VL model that vLLM (the CPU build too) serves, built offline and cached.

``tiny_vlm()`` returns a folder holding ``config.json``, random weights (~1M parameters), a byte-level BPE tokenizer
trained on a few sentences with ``tokenizers`` (Qwen's special tokens at the ids the config names), a Qwen-style
chat template and a ``Qwen2VLProcessor`` (image + video processor). Its captions are gibberish; what it shows is the
plumbing. The folder is keyed by a hash of this file, under the repo's git-ignored ``runs/``; building it takes a
few seconds and needs no network.

Facts from shared/docs/ENVIRONMENT.md ("vLLM on a CPU"): head_dim must be 64 (the CPU attention rejects 16), the
text rope is ``mrope_section [8, 12, 12]`` (sums to head_dim / 2), and the processor must be saved with a video
processor too.

    python tests/vllm_model.py            # build (if missing) and print the folder
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("UNIQA_VLLM_MODEL_CACHE", ROOT / "runs" / "vllm-model"))
MIN_PIXELS, MAX_PIXELS = 56 * 56, 112 * 112  # 3136 / 12544: 4..16 merged image tokens per image
MAX_MODEL_LEN = 512
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
           "<|video_pad|>"]
SENTENCES = [
    "You are an expert in image quality assessment.",
    "Describe the quality of this image: sharpness, noise, exposure, colour and compression artefacts.",
    "The image is sharp and well exposed, with natural colours and good contrast.",
    "The photo is blurry and noisy, with strong JPEG blocking artefacts and washed-out colours.",
    "A balanced composition with even lighting and harmonious colours; the subject is in focus.",
    "Its aesthetics are poor: dark, murky lighting and clashing hues, with the subject at the frame edge.",
    "system user assistant image text quality aesthetics excellent good fair poor bad",
]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] in ('image', 'image_url') %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _key() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=480, special_tokens=SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(SENTENCES * 4, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   additional_special_tokens=SPECIAL[1:])
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = MAX_MODEL_LEN
    return fast


def never_empty(model, tokenizer, scale: float = 40.0) -> None:
    """Make every caption non-empty: the output rows of special and blank tokens (EOS among them) are zero, so their
    logit is 0, and the other rows come in pairs ``r, -r``, so for any hidden state some ordinary token has a logit
    well above 0 (the rows are scaled up; at temperature <= 1 a special token is practically never sampled). The
    model then always writes ``max_tokens`` tokens of gibberish."""
    import torch

    weight = model.lm_head.weight  # (vocab, hidden)
    vocab = len(tokenizer)
    blank = [i for i in range(vocab) if i in tokenizer.all_special_ids or not tokenizer.decode([i]).strip()]
    ordinary = [i for i in range(vocab) if i not in set(blank)]
    with torch.no_grad():
        weight.mul_(scale)
        weight[blank] = 0
        weight[vocab:] = 0
        weight[ordinary[1::2]] = -weight[ordinary[0::2]][: len(ordinary[1::2])]


def build(folder: Path) -> None:
    import torch
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    tokenizer = build_tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL}
    assert ids == {t: i for i, t in enumerate(SPECIAL)}, ids
    text = dict(vocab_size=512, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=1, max_position_embeddings=4096, rms_norm_eps=1e-6,
                rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [8, 12, 12]},
                bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"])
    vision = dict(depth=1, embed_dim=128, hidden_size=128, mlp_ratio=2, num_heads=2, patch_size=14,
                  spatial_merge_size=2, temporal_patch_size=2)
    config = Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
                           video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                           vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=False)
    config.bos_token_id, config.eos_token_id, config.pad_token_id = (ids["<|endoftext|>"], ids["<|im_end|>"],
                                                                     ids["<|endoftext|>"])
    torch.manual_seed(0)
    model = Qwen2VLForConditionalGeneration(config).eval()
    never_empty(model, tokenizer)
    size = {"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS}
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size, patch_size=14, merge_size=2, temporal_patch_size=2),
        video_processor=Qwen2VLVideoProcessor(size=size, patch_size=14, merge_size=2, temporal_patch_size=2),
        tokenizer=tokenizer, chat_template=CHAT_TEMPLATE)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    gen = {"bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
           "pad_token_id": ids["<|endoftext|>"]}
    (tmp / "generation_config.json").write_text(json.dumps(gen))
    tmp.rename(folder)


def tiny_vlm(cache: Path = CACHE) -> str:
    """The model folder (built on first use)."""
    folder = cache / f"tiny-qwen2-vl-{_key()}"
    if not (folder / "config.json").exists():
        cache.mkdir(parents=True, exist_ok=True)
        build(folder)
    return str(folder)


if __name__ == "__main__":
    print(tiny_vlm())

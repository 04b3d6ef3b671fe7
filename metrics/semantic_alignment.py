"""Semantic alignment of a video with a description, judged by Qwen2-VL (JUST-DUB-IT A.1 data filter).

A few frames go to the model as one video with the question whether it shows the description; the
score is P("Yes") against P("No") from the logits of the answer's first token. Weights are a local
Hugging Face folder of the user's (e.g. Qwen2-VL-7B-Instruct); nothing is downloaded.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .asr import MetricUnavailable

QUESTION = 'Does this video show the following scene: "{description}"? Answer Yes or No.'
YES, NO = ("Yes", "yes"), ("No", "no")
MAX_FRAME_PIXELS = 448 * 448  # bounds the video tokens per frame pair (28 x 28 pixels each after merging)


def load_qwen2_vl(folder: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None):
    """(model, processor) from a local Qwen2-VL folder (config, weights, tokenizer, processor configs)."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"Qwen2-VL folder not found or incomplete: {folder} (needs config.json, the "
                                "weights and the processor files of a Hugging Face Qwen2-VL checkpoint)")
    try:
        from transformers import AutoProcessor, Qwen2VLForConditionalGeneration
    except ImportError as exc:  # transformers < 4.45
        raise MetricUnavailable(f"semantic alignment needs transformers with Qwen2-VL ({exc})") from exc
    model = Qwen2VLForConditionalGeneration.from_pretrained(folder, dtype=dtype or torch.float32, local_files_only=True)
    processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
    return model.eval().to(device), processor


def answer_ids(tokenizer, words) -> list[int]:
    """First token of each answer word (the token the model would emit first), without duplicates."""
    return sorted({tokenizer.encode(w, add_special_tokens=False)[0] for w in words})


def yes_probability(logits: torch.Tensor, yes_ids: list[int], no_ids: list[int]) -> float:
    """P(yes) of a yes/no answer from next-token ``logits`` [V], the two answers' tokens renormalised."""
    two = torch.stack([logits[yes_ids].float().logsumexp(0), logits[no_ids].float().logsumexp(0)])
    return float(two.softmax(0)[0])


def _video(frames: torch.Tensor, n_frames: int) -> np.ndarray:
    """An even number of evenly spaced frames (Qwen2-VL patches 2 frames at a time), downscaled to
    at most ``MAX_FRAME_PIXELS`` each, as uint8 [T, H, W, 3]."""
    n = max(2, n_frames - n_frames % 2)
    idx = torch.from_numpy(np.linspace(0, len(frames) - 1, n).round().astype(np.int64))
    x = frames[idx].float().permute(0, 3, 1, 2)
    h, w = x.shape[-2:]
    scale = min(1.0, (MAX_FRAME_PIXELS / (h * w)) ** 0.5)
    if scale < 1.0:
        x = F.interpolate(x, size=(max(28, round(h * scale)), max(28, round(w * scale))), mode="bilinear",
                          antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


@torch.no_grad()
def semantic_alignment(model, processor, frames: torch.Tensor, description: str, n_frames: int = 8) -> float:
    """P("Yes") that uint8 ``frames`` [T, H, W, 3] show ``description``."""
    question = QUESTION.format(description=description.strip())
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], videos=[_video(frames, n_frames)], return_tensors="pt")
    p = next(model.parameters())
    inputs = {k: v.to(p.device, p.dtype) if v.is_floating_point() else v.to(p.device) for k, v in inputs.items()}
    logits = model(**inputs, logits_to_keep=1).logits[0, -1]
    return yes_probability(logits, answer_ids(processor.tokenizer, YES), answer_ids(processor.tokenizer, NO))

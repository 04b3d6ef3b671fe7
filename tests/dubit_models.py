"""Tiny DubIt (LTX-2.3) models and inputs for the workflow tests, headless and in a real ComfyUI: the tiny
2.3 single file of ``testing.ltx23`` (gated attention, 9-row AdaLN, prompt AdaLN, no caption projection, the
2.3 text connectors), a tiny Gemma-3, the x2 upscaler and a DubIt-format LoRA."""
from __future__ import annotations

import json
from pathlib import Path

import torch

CKPT, LORA, UPSCALER, GEMMA = "ltx23_tiny.safetensors", "dubit_tiny.safetensors", "up_tiny.safetensors", "gemma_tiny"


def write_tiny_dubit_models(models: Path, seed: int = 4) -> dict:
    """models/{soundstage/ltx2, loras, latent_upscale_models, text_encoders}; returns the loader inputs (by input
    name) that point at them."""
    from safetensors.torch import save_file

    from soundstage.testing.just_dub_it import write_tiny_gemma, write_tiny_upsampler
    from soundstage.testing.ltx23 import write_tiny_ltx23_single_file

    for sub in ("soundstage/ltx2", "loras", "latent_upscale_models", "text_encoders"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    write_tiny_ltx23_single_file(models / "soundstage/ltx2" / CKPT, seed=seed)
    write_tiny_gemma(models / "text_encoders" / GEMMA)
    write_tiny_upsampler(models / "latent_upscale_models" / UPSCALER, seed=seed)
    g = torch.Generator().manual_seed(seed)
    lora = {}
    # A video attention and an audio feed-forward of the 2.3 blocks (DubIt's LoRA targets both streams).
    for name, (out_f, in_f) in {"transformer_blocks.0.attn1.to_q": (16, 16),
                                "transformer_blocks.1.audio_ff.net.2": (8, 32)}.items():
        lora[f"diffusion_model.{name}.lora_A.weight"] = torch.randn(4, in_f, generator=g) * 0.1
        lora[f"diffusion_model.{name}.lora_B.weight"] = torch.randn(out_f, 4, generator=g) * 0.1
    save_file(lora, str(models / "loras" / LORA))
    return {"ckpt_name": CKPT, "precision": "fp32", "lora_name": LORA, "upscale_model": UPSCALER,
            "text_encoder": f"{GEMMA}/model.safetensors", "max_tokens": 16}


def api_prompt(workflow: dict, names: dict, extra: dict | None = None) -> dict:
    """The workflow as an API prompt with every loader input in ``names`` (and ``extra``, by input name) set on
    whichever node has it as a widget."""
    from soundstage.headless.registry import build_registry
    from soundstage.headless.workflow import ui_to_api

    prompt = ui_to_api(workflow, build_registry())
    for node in prompt.values():
        for key, value in {**names, **(extra or {})}.items():
            if key in node["inputs"] and not isinstance(node["inputs"][key], list):
                node["inputs"][key] = value
    return prompt


def source_as_stems(prompt: dict) -> dict:
    """The prompt with MTV Audio Demix taken out and its mixture wired where its effects / music went: a tiny
    test has no separator weights, and the mix and ducking path is the same with the whole source track."""
    prompt = json.loads(json.dumps(prompt))
    demix = {nid for nid, n in prompt.items() if n["class_type"] == "SoundstageMTVAudioDemix"}
    for nid in demix:
        mixture = prompt.pop(nid)["inputs"]["mixture"]
        for node in prompt.values():
            for key, value in node["inputs"].items():
                if isinstance(value, list) and value[0] == nid:
                    node["inputs"][key] = list(mixture)
    return prompt

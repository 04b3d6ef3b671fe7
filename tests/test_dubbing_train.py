"""JUST-DUB-IT IC-LoRA training: the loss falls, and the saved LoRA loads back in ComfyUI format."""
from __future__ import annotations

import torch
from peft import set_peft_model_state_dict
from safetensors.torch import load_file, save_file

from soundstage.models.just_dub_it.lora import loras_merged, read_lora
from soundstage.testing.just_dub_it import random_native_checkpoint
from soundstage.training.just_dub_it.train import (
    DubbingLoraConfig,
    add_lora_adapters,
    dubbing_loss,
    param_groups,
    shifted_logit_normal,
    train,
)
from soundstage.models.just_dub_it.transformer import load_transformer


def _sample(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "target_video": torch.randn(1, 128, 2, 2, 3, generator=g), "target_audio": torch.randn(1, 8, 5, 16, generator=g),
        "ref_video": torch.randn(1, 128, 2, 2, 3, generator=g), "ref_audio": torch.randn(1, 8, 5, 16, generator=g),
        "video_context": torch.randn(1, 4, 24, generator=g), "audio_context": torch.randn(1, 4, 24, generator=g),
        "fg_mask": (torch.rand(1, 2, 2, 3, generator=g) > 0.5).float(),
    }


def _fixed_loss(model, sample, cfg):
    return dubbing_loss(model, sample, cfg, torch.Generator().manual_seed(1), sigma=0.5, first_frame=False)[0]


def test_loss_falls_and_audio_gets_its_own_learning_rate():
    sd, meta = random_native_checkpoint(seed=5)
    model = load_transformer(sd, meta)
    names = add_lora_adapters(model, rank=4)
    assert any("audio_attn1" in n for n in names) and any("video_to_audio_attn" in n for n in names)
    assert all(not p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)
    cfg = DubbingLoraConfig(rank=4, video_lr=3e-2, audio_lr=3e-3)
    groups = param_groups(model, cfg)
    assert [g["lr"] for g in groups] == [3e-2, 3e-3]
    audio_ids = {id(p) for p in groups[1]["params"]}
    audio_names = [n for n, p in model.named_parameters() if id(p) in audio_ids]
    assert audio_names and all("audio_attn" in n or "audio_ff" in n for n in audio_names)
    sample = _sample()
    opt = torch.optim.AdamW(groups)
    losses = []
    for _ in range(5):
        loss = _fixed_loss(model, sample, cfg)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        final = _fixed_loss(model, sample, cfg).item()
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert final < 0.95 * losses[0]


def test_shifted_logit_normal_follows_token_count():
    g = torch.Generator().manual_seed(0)
    small = torch.tensor([shifted_logit_normal(1024, g) for _ in range(400)])
    large = torch.tensor([shifted_logit_normal(4096, g) for _ in range(400)])
    assert 0 < small.min() and large.max() < 1
    # Median sigmoid(shift): 0.95 -> 0.72, 2.05 -> 0.89.
    assert abs(small.median().item() - 0.721) < 0.05 and abs(large.median().item() - 0.886) < 0.04


def test_train_saves_a_comfyui_lora_that_reproduces_the_adapter(tmp_path):
    sd, meta = random_native_checkpoint(seed=6)
    ckpt = tmp_path / "base.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(ckpt), metadata=meta)
    data = tmp_path / "pairs"
    data.mkdir()
    save_file(_sample(1), str(data / "pair0.safetensors"))
    cfg = DubbingLoraConfig(rank=4, video_lr=1e-2, audio_lr=1e-3, gradient_checkpointing=True)
    result = train(str(ckpt), str(data), str(tmp_path / "run"), steps=2, cfg=cfg, mixed_precision="no", save_every=2)
    assert result["step"] == 2
    saved = read_lora(result["lora"])
    assert saved.rank == 4 and all(k.startswith("transformer_blocks.") for k in saved.pairs)
    tensors = load_file(result["lora"])
    assert all(k.startswith("diffusion_model.") and k.endswith((".lora_A.weight", ".lora_B.weight")) for k in tensors)
    assert max(v.abs().max() for k, v in tensors.items() if ".lora_B." in k) > 0  # B starts at 0 and was trained
    # The same weights as a peft adapter and merged from the file give the same output.
    trained = load_transformer(sd, meta)
    add_lora_adapters(trained, rank=4)
    set_peft_model_state_dict(trained.transformer, {k[len("diffusion_model."):]: v for k, v in tensors.items()})
    base = load_transformer(sd, meta)
    sample = _sample(2)
    with torch.no_grad():
        want = _fixed_loss(trained, sample, cfg)
        with loras_merged(base.transformer, [(saved, 1.0)]):
            got = _fixed_loss(base, sample, cfg)
        plain = _fixed_loss(base, sample, cfg)
    assert abs(got - want) < 1e-4 and abs(plain - want) > 1e-4


def test_target_audio_enters_the_audio_loss():
    """The audio branch must learn the target's audio, not plain noise: the flow-matching target of
    the audio tokens is eps - x0 with x0 the target audio latent itself."""
    model = load_transformer(*random_native_checkpoint(seed=0))
    cfg = DubbingLoraConfig()
    sample = _sample()
    logs = [dubbing_loss(model, s, cfg, torch.Generator().manual_seed(1), sigma=0.5, first_frame=False)[1]
            for s in (sample, {**sample, "target_audio": sample["target_audio"] * 3.0})]
    assert abs(logs[0]["audio_loss"] - logs[1]["audio_loss"]) > 1e-3 * logs[0]["audio_loss"]

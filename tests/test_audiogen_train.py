"""AudioGen-Omni training: the flow-matching loss falls, EMA tracks, the CLI entry runs on a manifest."""
from __future__ import annotations

import argparse
import json

import torch
from safetensors.torch import save_file

from soundstage.training.audiogen_omni import train as tr
from soundstage.models.audiogen_omni.loader import load_mmdit
from soundstage.models.audiogen_omni.mmdit import MMDiT, MMDiTConfig
from soundstage.training.trainer import TrainConfig


CFG = MMDiTConfig(latent_dim=4, clip_dim=6, sync_dim=6, text_dim=8, hidden_dim=32, depth=2, fused_depth=1,
                  num_heads=2, text_seq_len=4, v2=True, latent_seq_len=12, clip_seq_len=4, sync_seq_len=8,
                  sample_rate=1200, samples_per_latent=100, lyrics_dim=8, lyrics_vocab=20, lyrics_blocks=1,
                  timing_seconds=4)


def _items(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    items = []
    for i in range(n):
        frames = 12 if i % 2 else 9  # two lengths: exercises padding + the length mask
        clip = torch.randn(4, 6, generator=g)
        # the target latent is a simple function of the clip features, so conditioning can be learned
        lat = clip[:, :4].repeat_interleave(3, dim=0)[:frames] + 0.05 * torch.randn(frames, 4, generator=g)
        items.append({"latent": lat, "clip": clip, "sync": torch.randn(8, 6, generator=g),
                      "lyrics_ids": torch.randint(1, 20, (frames,), generator=g)})
    return items


def test_loss_falls_with_dropout_masks_and_ema(tmp_path):
    torch.manual_seed(0)
    net = MMDiT(CFG)
    items = _items()
    cfg = TrainConfig(out_dir=str(tmp_path), steps=30, lr=5e-3, save_every=1000, log_every=1000, clip_grad=1.0)
    trainer, ema = tr.train(net, tr.batches(items, net, 4), cfg, ema_decay=0.9)
    losses = [h["loss"] for h in trainer.history]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.6 * first, (first, last)
    trained = trainer.unwrapped()
    w = "final_layer.conv.weight"
    diff_ema = (dict(ema.shadow.named_parameters())[w] - dict(trained.named_parameters())[w]).abs().max()
    assert 0 < diff_ema < 0.5


def test_collate_pads_and_masks():
    net = MMDiT(CFG)
    b = tr.collate(_items(2), net)
    assert b.latent.shape == (2, 12, 4) and b.latent_mask.sum(1).tolist() == [9, 12]
    assert b.lyrics_ids.shape == (2, 12) and (b.lyrics_ids[0, 9:] == 0).all()
    assert torch.allclose(b.duration_s, torch.tensor([9 / 12, 1.0]))


def test_cli_entry_on_manifest(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    lines = []
    for i, it in enumerate(_items(4)):
        save_file(it, str(data / f"clip{i}.safetensors"))
        lines.append(json.dumps({"features": f"clip{i}.safetensors"}))
    (data / "manifest.jsonl").write_text("\n".join(lines))
    (tmp_path / "cfg.json").write_text(json.dumps(CFG.to_dict()))
    p = argparse.ArgumentParser()
    tr.add_arguments(p)
    args = p.parse_args(["--data", str(data), "--out", str(tmp_path / "out"), "--config", str(tmp_path / "cfg.json"),
                         "--steps", "3", "--batch-size", "2"])
    assert tr.main(args) == 0
    net, _ = load_mmdit(tmp_path / "out" / "audiogen_omni_ema.safetensors")
    assert net.config == CFG


def test_prepare_raw_folder_then_train_step(tmp_path):
    from media_factory import make_audio, make_video

    from soundstage.training.audiogen_omni.prepare import FeatureExtractors, prepare_folder
    from soundstage.models.audiogen_omni.synchformer import Synchformer, SynchformerConfig
    from soundstage.models.common.codecs.mel import MEL_16K, LogMel
    from soundstage.models.common.codecs.mmaudio_vae import MelVAE, MelVAEConfig

    torch.manual_seed(0)
    vae = MelVAE(MelVAEConfig(mel_bins=80, latent_channels=20, hidden_channels=8, channel_multipliers=(1, 2),
                              layers_per_block=1)).eval()
    sync = Synchformer(SynchformerConfig(embed_dim=32, depth=1, num_heads=1)).eval()
    make_video(tmp_path / "clip.mp4", seconds=1.0, fps=25, size=(64, 48), audio="tone")
    make_audio(tmp_path / "voice.wav", seconds=0.5, sample_rate=16000)
    (tmp_path / "raw.jsonl").write_text("\n".join([
        json.dumps({"video": "clip.mp4", "transcript": "hello"}),
        json.dumps({"audio": "voice.wav", "lyrics": "la la la", "start_s": 2.0}),
    ]))
    ex = FeatureExtractors(vae=vae, mel=LogMel(MEL_16K), synchformer=sync)
    prepare_folder(tmp_path, ex)
    items = tr.manifest_items(tmp_path)
    assert items[0]["latent"].shape == (32, 20) and items[1]["latent"].shape == (16, 20)  # 31.25 latents/s
    assert items[0]["sync"].shape == (16, 32)  # 25 frames: 2 segments of 16, stride 8
    assert "sync" not in items[1]
    assert items[0]["lyrics_ids"].tolist() == [c + 1 for c in b"hello"] and float(items[1]["start_s"]) == 2.0
    net = MMDiT(CFG.replace(latent_dim=20, sync_dim=32, sample_rate=16000, samples_per_latent=512, lyrics_vocab=257))
    batch = tr.collate(items, net)
    assert batch.sync is None and batch.latent_mask.sum(1).tolist() == [32, 16]  # sync absent in one clip: dropped
    loss, _ = tr.make_loss_fn()(net, batch)
    assert torch.isfinite(loss)

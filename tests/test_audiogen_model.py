"""AudioGen-Omni additions on the MMDiT family: lyrics stream, T5 text, PAAPI, timing, empty features, sampler."""
from __future__ import annotations

import pytest
import torch

from soundstage.models.audiogen_omni.loader import load_mmdit, save_mmdit
from soundstage.models.audiogen_omni.lyrics import LyricsEncoder, LyricsEncoderConfig, LyricsTokenizer, script_of, to_symbols
from soundstage.models.audiogen_omni.mmdit import MMDiT
from soundstage.models.audiogen_omni.paapi import apply_rope, phase_aligned_rotations
from soundstage.models.audiogen_omni.presets import PRESETS, detect_config
from soundstage.models.audiogen_omni.sampler import generate
from soundstage.models.audiogen_omni.text import T5TextEncoder
from soundstage.testing.audiogen_omni import tiny_mmdit


def tiny_omni(**kw) -> MMDiT:
    net = tiny_mmdit(seed=0, **kw)
    with torch.no_grad():
        net.latent_std.abs_().add_(0.5)
        for name, p in net.named_parameters():
            if name.endswith(("q_norm.weight", "k_norm.weight")):
                p.fill_(3.0)  # sharp attention, so token order (RoPE) visibly matters
    return net


def test_paapi_phase_alignment():
    # Token i of a stream at half the latent rate sits at the phase of latent frame 2i.
    lat = phase_aligned_rotations(20, 20, 8)
    half = phase_aligned_rotations(10, 20, 8)
    assert torch.allclose(half[0, 3], lat[0, 6], atol=1e-5)
    x = torch.randn(1, 1, 10, 8)
    assert torch.allclose(apply_rope(x, half).norm(dim=-1), x.norm(dim=-1), atol=1e-5)


def test_text_stream_has_no_rope_lyrics_stream_has():
    net = tiny_omni()
    x, t = torch.randn(1, 20, 8), torch.tensor([0.4])
    text = torch.randn(1, 6, 16)
    ids = torch.randint(1, 40, (1, 20))
    lyr, lmask = net.encode_lyrics(ids)
    perm = torch.tensor([3, 1, 5, 0, 2, 4])
    with torch.no_grad():
        base = net(x, t, text_f=text, lyrics_f=lyr, lyrics_mask=lmask)
        shuffled_text = net(x, t, text_f=text[:, perm], lyrics_f=lyr, lyrics_mask=lmask)
        lperm = torch.randperm(20)
        shuffled_lyrics = net(x, t, text_f=text, lyrics_f=lyr[:, lperm], lyrics_mask=lmask[:, lperm])
    assert torch.allclose(base, shuffled_text, atol=1e-5)  # atemporal: order carries no meaning
    assert not torch.allclose(base, shuffled_lyrics, atol=1e-3)


def test_any_subset_of_conditions_and_masks():
    net = tiny_omni()
    x, t = torch.randn(2, 20, 8), torch.tensor([0.1, 0.9])
    full = dict(clip_f=torch.randn(2, 8, 12), sync_f=torch.randn(2, 16, 10), text_f=torch.randn(2, 6, 16),
                text_mask=torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool))
    outs = []
    with torch.no_grad():
        for drop in [(), ("clip",), ("sync", "text_f"), ("clip_f", "sync_f", "text_f")]:
            kw = {k: v for k, v in full.items() if k not in drop and k.split("_")[0] not in drop}
            if "text_f" not in kw:
                kw.pop("text_mask", None)
            v = net(x, t, **kw)
            assert v.shape == x.shape and torch.isfinite(v).all()
            outs.append(v)
        # masked T5 padding must not matter
        tf = full["text_f"].clone()
        tf[0, 3:] = 99.0
        assert torch.allclose(net(x, t, **dict(full, text_f=tf)), outs[0], atol=1e-5)
    assert not torch.allclose(outs[0], outs[3], atol=1e-3)


def test_modality_dropout_equals_empty():
    net = tiny_omni()
    x, t = torch.randn(2, 20, 8), torch.tensor([0.5, 0.5])
    clip = torch.randn(2, 8, 12)
    with torch.no_grad():
        dropped = net(x, t, clip_f=clip, drop={"clip": torch.tensor([True, False])})
        empty = net(x[:1], t[:1], clip_f=None)
        kept = net(x[1:], t[1:], clip_f=clip[1:])
    assert torch.allclose(dropped[:1], empty, atol=1e-5) and torch.allclose(dropped[1:], kept, atol=1e-5)


def test_timing_embeddings_change_output():
    net = tiny_omni()
    x, t = torch.randn(1, 20, 8), torch.tensor([0.5])
    with torch.no_grad():
        a = net(x, t, start_s=0.0, duration_s=2.0)
        b = net(x, t, start_s=3.0, duration_s=2.0)
        c = net(x, t, start_s=0.0, duration_s=2.9)  # same whole second
    assert not torch.allclose(a, b, atol=1e-3) and torch.allclose(a, c)


def test_lyrics_encoder_respects_mask():
    torch.manual_seed(0)
    enc = LyricsEncoder(LyricsEncoderConfig(vocab_size=30, dim=16, blocks=2)).eval()
    with torch.no_grad():
        for p in enc.parameters():
            p.normal_(0, 0.3)
    ids = torch.tensor([[5, 6, 7, 8, 0, 0, 0, 0, 0, 0]])
    with torch.no_grad():
        a = enc(ids)
        b = enc(torch.cat([ids, torch.zeros(1, 6, dtype=torch.long)], dim=1))
    assert torch.allclose(a[:, :4], b[:, :4], atol=1e-5)
    assert a[:, 4:].abs().max() == 0 and a[:, :4].abs().min() > 0


def test_tokenizer_graphemes_and_phonemes():
    tok = LyricsTokenizer()
    ids, mask = tok.batch(["la la", "sing"], frames=8)
    assert ids.shape == (2, 8) and mask.sum(1).tolist() == [5, 4]
    assert ids[1, :4].tolist() == [c + 1 for c in b"sing"]
    assert script_of("hello") == "LATIN" and script_of("你好") == "CJK" and script_of("привет") == "CYRILLIC"
    pytest.importorskip("phonemizer")
    pytest.importorskip("espeakng_loader")
    ipa = to_symbols("你好")
    assert ipa and "你" not in ipa


def test_t5_encoder_feeds_network():
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    t5 = T5EncoderModel(T5Config(vocab_size=50, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2))
    enc = T5TextEncoder(t5, max_length=6)
    ids = torch.tensor([[4, 7, 9, 1, 0, 0]])
    feats = enc.encode_ids(ids, ids > 0)
    assert feats.features.shape == (1, 6, 16) and feats.features[0, 4:].abs().max() == 0
    net = tiny_omni()
    with torch.no_grad():
        v = net(torch.randn(1, 20, 8), torch.tensor([0.3]), text_f=feats.features, text_mask=feats.mask)
    assert torch.isfinite(v).all()


def test_save_load_detect_roundtrip(tmp_path):
    net = tiny_omni()
    path = tmp_path / "omni.safetensors"
    save_mmdit(net, path)
    loaded, name = load_mmdit(path)
    assert name == "custom" and loaded.config == net.config
    assert detect_config(net.state_dict())[1].replace(latent_seq_len=20, clip_seq_len=8, sync_seq_len=16,
                                                      sample_rate=1000, samples_per_latent=100) == net.config
    x, t = torch.randn(1, 20, 8), torch.tensor([0.2])
    with torch.no_grad():
        assert torch.allclose(net(x, t), loaded(x, t), atol=1e-6)


def test_paper_preset_size():
    from soundstage.models.common.checkpoint import meta_device

    with meta_device():
        net = MMDiT(PRESETS["audiogen_omni"])
    n = sum(p.numel() for p in net.parameters())
    assert 1.50e9 < n < 1.60e9 and net.config.depth == 24  # paper 4: 1.55B, 24 layers


def test_generate_seed_variations_duration_callback():
    net = tiny_omni()
    steps = []
    clip = torch.randn(1, 8, 12)
    a = generate(net, duration_s=2.0, seed=3, variations=2, num_steps=3, clip_f=clip, callback=lambda i, n: steps.append(i))
    b = generate(net, duration_s=2.0, seed=3, variations=2, num_steps=3, clip_f=clip, batched_cfg=False)
    assert steps == [1, 2, 3]
    assert a.latent.shape == (2, 20, 8) and a.frames.tolist() == [20, 20]
    assert torch.allclose(a.latent, b.latent, atol=1e-4)  # batched cond/uncond == two passes
    assert not torch.allclose(a.latent[0], a.latent[1], atol=1e-3)  # variations differ
    c = generate(net, duration_s=1.0, seed=3, variations=1, num_steps=2, latent_len=20)
    assert c.frames.tolist() == [10] and c.latent.shape == (1, 20, 8)
    ids = torch.randint(1, 40, (1, 20))
    lyr, mask = net.encode_lyrics(ids)
    d = generate(net, duration_s=2.0, seed=1, num_steps=2, lyrics_f=lyr, lyrics_mask=mask)
    assert torch.isfinite(d.latent).all()

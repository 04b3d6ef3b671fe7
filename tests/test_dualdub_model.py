"""DualDub model parts: aligner masks, incremental == full, dual-stream sampler, encoders, checkpoints."""
from __future__ import annotations

import pytest
import torch

from soundstage.models.common.checkpoint import CheckpointError
from soundstage.models.dualdub.aligner import AlignerCache
from soundstage.testing.dualdub import tiny_config
from soundstage.models.dualdub.config import V2A_PROMPT
from soundstage.models.dualdub.io import load_dualdub, save_dualdub
from soundstage.models.dualdub.model import DualDub
from soundstage.models.dualdub.sampler import (
    IncrementalDecoder,
    SamplingOptions,
    full_hidden,
    generate,
    steps_for_duration,
)
from soundstage.models.dualdub.speaker import SpeakerEncoder, reference_crop
from soundstage.models.dualdub.text import encode_text, load_tokenizer, tokenizer_path_for, train_bpe


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    cfg = tiny_config(aligner_layers=2)
    return DualDub(cfg).eval()


def _cond(model, text_len=3, frames=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    return model.conditions(
        text_ids=torch.randint(0, cfg.text_vocab_size, (1, text_len), generator=g),
        speaker=torch.randn(1, cfg.speaker_dim, generator=g),
        video=torch.randn(1, frames, cfg.video_dim, generator=g),
        video_times=torch.arange(frames) * 3 / 25.0,
    )


def _streams(model, n, seed=2):
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    a = torch.randint(0, cfg.codebook_size, (1, n), generator=g)
    s = torch.randint(0, cfg.codebook_size, (1, n), generator=g)
    a[:, 0] = s[:, 0] = cfg.bos_id
    return a, s


def test_aligner_incremental_equals_full(tiny):
    cond = _cond(tiny)
    a, s = _streams(tiny, 12)
    video = tiny.video_memory(cond)
    with torch.no_grad():
        full = tiny.aligner(tiny.audio_embed(a), tiny.speech_embed(s), video, cond.video_mask)
        cache = AlignerCache()
        # Uneven chunks: a prefill of 5, then single positions.
        parts = [tiny.aligner(tiny.audio_embed(a[:, :5]), tiny.speech_embed(s[:, :5]), video, cond.video_mask,
                              cache=cache)]
        for i in range(5, 12):
            parts.append(tiny.aligner(tiny.audio_embed(a[:, i:i + 1]), tiny.speech_embed(s[:, i:i + 1]), video,
                                      cond.video_mask, cache=cache))
    assert (torch.cat(parts, 1) - full).abs().max().item() <= 1e-5


def test_aligner_is_causal_between_streams_and_sees_whole_video(tiny):
    cond = _cond(tiny)
    a, s = _streams(tiny, 8)
    video = tiny.video_memory(cond)
    with torch.no_grad():
        base = tiny.aligner(tiny.audio_embed(a), tiny.speech_embed(s), video, cond.video_mask)
        s2 = s.clone()
        s2[:, 5] = (s2[:, 5] + 1) % tiny.config.codebook_size  # change speech at position 5 only
        changed = tiny.aligner(tiny.audio_embed(a), tiny.speech_embed(s2), video, cond.video_mask)
        v2 = video.clone()
        v2[:, -1] += 1.0  # the last video frame: every position must react (non-causal)
        moved = tiny.aligner(tiny.audio_embed(a), tiny.speech_embed(s), v2, cond.video_mask)
    diff = (changed - base).abs().amax(-1)[0]
    assert diff[:5].max().item() == 0.0
    assert diff[5:].min().item() > 0.0
    assert (moved - base).abs().amax(-1)[0].min().item() > 0.0


def test_trunk_with_kv_cache_equals_full_forward(tiny):
    cond = _cond(tiny)
    a, s = _streams(tiny, 10)
    with torch.no_grad():
        full = full_hidden(tiny, cond, a, s)
        dec = IncrementalDecoder(tiny, cond)
        steps = [dec.start(torch.stack([a[:, 0], s[:, 0]], 1))]
        steps += [dec.step(torch.stack([a[:, i], s[:, i]], 1)) for i in range(1, 10)]
        logits_a, logits_s = tiny(cond, a, s)
    inc = torch.stack(steps, 1)
    assert (inc - full).abs().max().item() <= 1e-5
    assert (tiny.audio_head(inc) - logits_a).abs().max().item() <= 1e-5
    assert (tiny.speech_head(inc) - logits_s).abs().max().item() <= 1e-5


def test_padded_batch_gives_each_sample_its_own_numbers(tiny):
    c1, c2 = _cond(tiny, text_len=2, seed=3), _cond(tiny, text_len=4, seed=4)
    a, s = _streams(tiny, 6)
    pad = torch.zeros(1, 2, dtype=torch.long)
    batch = tiny.conditions(
        text_ids=torch.cat([torch.cat([c1.text_ids, pad], 1), c2.text_ids]),
        text_mask=torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool),
        speaker=torch.cat([c1.speaker, c2.speaker]), video=torch.cat([c1.video, c2.video]),
        video_times=torch.cat([c1.video_times, c2.video_times]),
    )
    with torch.no_grad():
        both = tiny(batch, a.repeat(2, 1), s.repeat(2, 1))[0]
        one = tiny(c1, a, s)[0]
    assert (both[0] - one[0]).abs().max().item() <= 1e-5


def test_sampler_cache_and_no_cache_agree_and_respect_duration(tiny):
    cond = _cond(tiny)
    n = steps_for_duration(0.6, tiny.config.token_rate)
    assert n == 15
    opts = SamplingOptions(temperature=1.0, top_k=8, top_p=0.9, repetition_penalty=1.2, seed=7, min_steps=n)
    seen = []
    g1 = generate(tiny, cond, n, options=opts, callback=lambda i, t: seen.append((i, t)))
    g2 = generate(tiny, cond, n, options=opts, use_cache=False)
    assert torch.equal(g1.audio, g2.audio) and torch.equal(g1.speech, g2.speech)
    assert g1.steps == n and g1.audio.shape == (1, n)
    assert seen == [(i, n) for i in range(1, n + 1)]
    # min_steps = n forbids EOS, so both streams are full-length codes.
    assert int(g1.audio.max()) < tiny.config.codebook_size and int(g1.speech_lengths) == n
    g3 = generate(tiny, cond, n, options=SamplingOptions(seed=8, min_steps=n))
    assert not torch.equal(g1.audio, g3.audio)


def test_sampler_eos_ends_stream_and_task_masks(tiny):
    cfg = tiny.config
    cond = _cond(tiny)
    # Force EOS on the speech head only: speech ends at once, audio runs on.
    with torch.no_grad():
        saved = tiny.speech_head.bias.clone()
        tiny.speech_head.bias[cfg.eos_id] = 1e4
        try:
            g = generate(tiny, cond, 6, options=SamplingOptions(seed=1))
        finally:
            tiny.speech_head.bias.copy_(saved)
    assert int(g.speech_lengths) == 0 and bool((g.speech == cfg.pad_id).all())
    assert int(g.audio_lengths) == 6
    v2a = generate(tiny, cond, 5, task="v2a", options=SamplingOptions(seed=1, min_steps=5))
    assert bool((v2a.speech == cfg.pad_id).all()) and int(v2a.audio_lengths) == 5
    with pytest.raises(ValueError, match="task"):
        generate(tiny, cond, 2, task="dance")


def test_callback_exception_stops_generation(tiny):
    class Stop(Exception):
        pass

    def cb(i, total):
        if i == 3:
            raise Stop

    with pytest.raises(Stop):
        generate(tiny, _cond(tiny), 10, callback=cb)


def test_speaker_encoder_pools_to_one_vector_and_ignores_padding():
    torch.manual_seed(0)
    enc = SpeakerEncoder(n_mels=16, channels=8, out_dim=6, heads=2, sample_rate=24000).eval()
    wav = torch.randn(1, 24000)
    with torch.no_grad():
        alone = enc(wav)
        padded = enc(torch.cat([wav, torch.zeros(1, 4096)], 1), lengths=torch.tensor([24000]))
    assert alone.shape == (1, 6)
    assert (alone - padded).abs().max().item() <= 1e-4
    long = torch.arange(10 * 24000).float()
    crop = reference_crop(long, 24000, 3.0, generator=torch.Generator().manual_seed(0), random=True)
    assert crop.shape[-1] == 72000 and crop[0] > 0
    assert torch.equal(reference_crop(long, 24000, 3.0), long[:72000])


def test_bpe_tokenizer_trains_saves_and_encodes(tmp_path):
    texts = ["hello there, general kenobi", "the quick brown fox", V2A_PROMPT] * 5
    tok = train_bpe(texts, vocab_size=300)
    ckpt = tmp_path / "dd.safetensors"
    tok.save(str(tokenizer_path_for(ckpt)))
    again = load_tokenizer(tokenizer_path_for(ckpt))
    ids = encode_text(again, "hello fox", 300)
    assert again.decode(ids.tolist()) == "hello fox"
    # BPE merges make a known phrase shorter than its bytes.
    assert len(encode_text(again, V2A_PROMPT, 300)) < len(V2A_PROMPT.encode())
    with pytest.raises(ValueError, match="only 10"):
        encode_text(again, "hello", 10)


def test_checkpoint_roundtrip_with_tokenizer(tiny, tmp_path):
    tok = train_bpe(["a small text corpus", "for a tiny tokenizer"], vocab_size=280)
    path = save_dualdub(tmp_path / "dualdub_tiny.safetensors", tiny, tok)
    model, tok2 = load_dualdub(path)
    cond = _cond(tiny)
    a, s = _streams(tiny, 5)
    with torch.no_grad():
        # Same weights; only memory layout differs (the loaded tensors are the file's, mmapped).
        assert (model(cond, a, s)[0] - tiny(cond, a, s)[0]).abs().max().item() <= 1e-6
    assert all(torch.equal(v, tiny.state_dict()[k]) for k, v in model.state_dict().items())
    assert tok2.encode("tiny text").ids == tok.encode("tiny text").ids
    with pytest.raises(CheckpointError):
        from safetensors.torch import save_file

        save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
        load_dualdub(tmp_path / "other.safetensors")


def test_token_sampling_filters():
    from soundstage.models.common.sampling import apply_repetition_penalty, sample_next, top_k_filter, top_p_filter

    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0]])
    assert torch.isinf(top_k_filter(logits, 2)[0, 2:]).all() and torch.isfinite(top_k_filter(logits, 2)[0, :2]).all()
    probs = logits.softmax(-1)[0]  # ~[0.61, 0.22, 0.14, 0.03]
    kept = torch.isfinite(top_p_filter(logits, 0.7)[0])
    assert kept.tolist() == [True, True, False, False]  # 0.61 < 0.7, so the second token is needed
    assert torch.isfinite(top_p_filter(logits, 0.5)[0]).tolist() == [True, False, False, False]
    assert probs[0] > 0.5
    pen = apply_repetition_penalty(logits, torch.tensor([[0, 3]]), 2.0)
    assert pen[0].tolist() == [1.0, 1.0, 0.5, -2.0]
    assert int(sample_next(logits, temperature=0.0)) == 0
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([sample_next(logits, top_k=2, generator=g) for _ in range(200)])
    assert set(draws.flatten().tolist()) == {0, 1}

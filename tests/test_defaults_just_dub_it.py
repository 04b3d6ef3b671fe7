"""The JUST-DUB-IT tiny default's base model: the smoke recipe's files load strictly through the nodes' loaders,
the native single-file writer is the exact inverse of the loaders, and stages resume by key."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    from soundstage.training.defaults import recipe

    out = tmp_path_factory.mktemp("jdi") / "work"
    torch.set_num_threads(1)
    return out, recipe("just_dub_it").train(str(out), scale="smoke", seed=0)


def test_smoke_files_load_strictly_through_the_nodes_loaders(smoke):
    from safetensors import safe_open

    from soundstage.nodes.dubbing import load_ltx2_av, load_text_encoder
    from soundstage.training.defaults.just_dub_it import FILES, SCALES, audio_token_width

    out, report = smoke
    sc = SCALES["smoke"]
    model = load_ltx2_av(str(out / "weights" / FILES["model"]), "fp32")
    for part in ("transformer", "connectors", "video_vae", "audio_vae", "vocoder"):
        assert getattr(model, part) is not None, part
    with safe_open(str(out / "weights" / FILES["model"]), "pt") as f:
        header = json.loads(f.metadata()["config"])
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F16"}
    assert set(header) == {"transformer", "audio_vae", "vocoder"}
    assert header["transformer"]["audio_in_channels"] == audio_token_width(sc)
    text = load_text_encoder(str(out / "weights" / FILES["text_encoder"]), "fp32", sc.max_tokens)
    assert text is not None
    # the report names every stage once, in order, and the files' sizes
    assert [s["stage"] for s in report["stages"]] == ["video_vae_frames", "video_vae", "audio_vae", "vocoder", "dit",
                                                    "switch_clips", "pairs", "dubbing_lora"]
    assert report["tokens"]["prompt_max"] <= sc.max_tokens
    assert all(report["files"][k]["bytes"] > 0 for k in FILES)


def test_base_model_predicts_through_the_loaded_parts(smoke):
    # The saved parts work together as the nodes run them: codec encode -> transformer -> codec decode.
    from soundstage.models.just_dub_it.av_codec import decode_audio, decode_video
    from soundstage.models.just_dub_it.in_context import (audio_positions, patchify_audio, unpatchify_audio,
                                                          unpatchify_video, video_positions)
    from soundstage.models.just_dub_it.text import encode_prompts
    from soundstage.training.defaults.just_dub_it import FPS, SCALES, clip_latents, jdi_clips, load_base
    from soundstage.training.defaults.just_dub_it_parts import audio_vae_config

    out, _ = smoke
    sc = SCALES["smoke"]
    parts, gemma = load_base(out / "weights")
    clip = jdi_clips("heldout", 1, sc, language="fr")[0]
    assert 'says in French: "' in clip.prompt and "music" not in clip.prompt
    video, audio = clip_latents(parts.video_vae, parts.audio_vae, clip, audio_vae_config(sc.audio_width))
    v_ctx, a_ctx = encode_prompts(gemma, parts.connectors, [clip.prompt], sc.max_tokens)
    h = w = sc.size // 32
    with torch.no_grad():
        v, a = parts.transformer(video[None], audio[None], torch.full((1, video.shape[0], 1), 0.5),
                                 torch.full((1, audio.shape[0], 1), 0.5),
                                 video_positions(sc.latent_frames, h, w, FPS), audio_positions(audio.shape[0]),
                                 v_ctx, a_ctx)
    assert v.shape == video[None].shape and a.shape == audio[None].shape
    assert torch.isfinite(v).all() and torch.isfinite(a).all()
    frames = decode_video(parts.video_vae, unpatchify_video(video[None], sc.latent_frames, h, w))
    assert tuple(frames.shape) == (sc.frames, sc.size, sc.size, 3)
    wave, rate = decode_audio(parts.audio_vae, parts.vocoder, unpatchify_audio(audio[None], sc.audio_width))
    assert rate == 24000 and wave.shape[0] == 2 and abs(wave.shape[1] / rate - sc.seconds) < 0.1
    assert patchify_audio(unpatchify_audio(audio[None], sc.audio_width)).equal(audio[None])


def test_stages_resume_by_key(smoke, monkeypatch):
    from soundstage.training.defaults import just_dub_it

    out, first = smoke
    sc = just_dub_it.SCALES["smoke"]
    monkeypatch.setitem(just_dub_it.SCALES, "smoke", dataclasses.replace(sc, dit_steps=sc.dit_steps + 1))
    again = just_dub_it.RECIPE.train(str(out), scale="smoke", seed=0)
    resumed = {s["stage"]: bool(s.get("resumed")) for s in again["stages"]}
    # only the DiT's steps changed: every codec stage is taken from the first run, the DiT retrains, and so do the
    # pairs and the LoRA made from it; the world's switch clips do not depend on the base
    assert resumed == {"video_vae_frames": True, "video_vae": True, "audio_vae": True, "vocoder": True, "dit": False,
                       "switch_clips": True, "pairs": False, "dubbing_lora": False}
    assert next(s for s in again["stages"] if s["stage"] == "dit")["steps"] == sc.dit_steps + 1
    assert again["video_vae_heldout"] == first["video_vae_heldout"]  # the same codec weights


def _tiny_modules(seed=0):
    from diffusers import AutoencoderKLLTX2Audio, AutoencoderKLLTX2Video
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder

    from soundstage.training.defaults import just_dub_it as jdi
    from soundstage.training.defaults import just_dub_it_parts as parts

    sc = jdi.SCALES["smoke"]
    net = jdi.new_dit(sc, seed)
    torch.manual_seed(seed)
    modules = {"transformer": net.transformer.transformer, "connectors": net.connectors,
               "video_vae": AutoencoderKLLTX2Video(**parts.video_vae_config(sc.vae_width, sc.latent_channels)),
               "audio_vae": AutoencoderKLLTX2Audio(**parts.audio_vae_config(sc.audio_width)),
               "vocoder": LTX2Vocoder(**parts.vocoder_config(sc.vocoder_width))}
    g = torch.Generator().manual_seed(seed)
    for m in modules.values():  # every tensor non-zero and distinct, so a swapped key cannot pass
        for t in m.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=g) * 0.1 + 1.0)
    header = parts.audio_codec_header(parts.audio_vae_config(sc.audio_width), parts.vocoder_config(sc.vocoder_width))
    return sc, modules, header


def test_writer_round_trips_every_part_exactly(tmp_path):
    from soundstage.models.just_dub_it.bundle import load_ltx2_parts
    from soundstage.models.just_dub_it.native_writer import save_ltx2_single_file
    from soundstage.training.defaults.just_dub_it import native_config

    sc, modules, header = _tiny_modules()
    path = save_ltx2_single_file(tmp_path / "m.safetensors", native_config=native_config(sc), codec_config=header,
                                 dtype=torch.float32, **modules)
    loaded = load_ltx2_parts(path, dtype=torch.float32)
    got = {"transformer": loaded.transformer.transformer, "connectors": loaded.connectors,
           "video_vae": loaded.video_vae, "audio_vae": loaded.audio_vae, "vocoder": loaded.vocoder}
    for name, module in modules.items():
        want, have = module.state_dict(), got[name].state_dict()
        assert set(want) == set(have), name
        assert all(torch.equal(want[k], have[k]) for k in want), name
        assert dict(got[name].config).items() >= {k: v for k, v in dict(module.config).items()
                                                  if not k.startswith("_") and not isinstance(v, (list, tuple))}.items(), name


def test_gemma_writer_round_trips_weights_and_tokenizer(tmp_path):
    from soundstage.models.just_dub_it.native_writer import save_gemma_single_file
    from soundstage.models.just_dub_it.text import gemma_hidden_states, load_gemma
    from soundstage.training.defaults.just_dub_it_parts import new_gemma, train_spiece

    texts = ['a red ball bounces, while a man says in German: "lena sieht heute das blaue auto"',
             'a green ball bounces, while a woman says: "the cat sees the red car"',
             'a lamp blinks with a beep, while a man says in French: "lena voit la voiture bleue"'] * 4
    proto = train_spiece(texts, 80)
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_proto=proto)
    assert (sp.pad_id(), sp.eos_id(), sp.bos_id(), sp.unk_id()) == (0, 1, 2, 3)  # Gemma's ids
    model = new_gemma(sp.get_piece_size(), 16, 2, seed=3)
    path = save_gemma_single_file(tmp_path / "g.safetensors", model, proto, dtype=torch.float32)
    enc = load_gemma(path, dtype=torch.float32)
    assert all(torch.equal(v, enc.model.state_dict()[k]) for k, v in model.state_dict().items())
    hidden, mask = gemma_hidden_states(enc, texts[:2], 48)
    ids = sp.encode(texts[0])
    assert int(mask[0].sum()) == len(ids) + 1  # BOS + the pieces, left-padded
    ref = model(input_ids=torch.tensor([[2] + ids]), output_hidden_states=True).hidden_states[-1]
    assert torch.allclose(hidden[0, -len(ids) - 1:, :, -1], ref[0], atol=1e-5)


def test_inverted_rename_tables_are_exact_inverses():
    from soundstage.models.common.checkpoint import rename_keys
    from soundstage.models.just_dub_it.codecs import VOCODER_RENAMES
    from soundstage.models.just_dub_it.native_writer import invert_renames
    from soundstage.models.just_dub_it.text import CONNECTOR_RENAMES

    native = {"model.diffusion_model.video_embeddings_connector.transformer_1d_blocks.0.attn1.q_norm.weight": 0,
              "text_embedding_projection.aggregate_embed.weight": 1, "conv_pre.weight": 2, "ups.0.bias": 3,
              "resblocks.1.convs1.0.weight": 4, "conv_post.bias": 5}
    for table in (CONNECTOR_RENAMES, VOCODER_RENAMES):
        forward = rename_keys(native, table)
        assert rename_keys(forward, invert_renames(table)) == native
    with pytest.raises(ValueError, match="not a fixed-string rule"):
        invert_renames([(r"^(vocoder|bwe)\.ups\.", r"\1.upsamplers.")])

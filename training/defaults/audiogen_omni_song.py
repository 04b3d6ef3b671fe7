"""AudioGen-Omni tiny default for song from lyrics (``song_from_lyrics``): a caption and lyrics in, a sung line out.

The world's song clips (``clip_spec(..., voice="sing")``): the sentence sung a word a beat to the tune the caption
names (synthworld/song.py). Every network but the text encoder starts from the speech default's and is fine-tuned
on the world's sung stems:

1. the mel VAE is the speech default's, fine-tuned on the sung stems: the speech VAE's round trip keeps the tune on
   21 % of voiced frames (Griffin-Lim from it; 99 % from the true mel), the male voices' on none, since the sung top
   octave lies above the speech it learned; 4000 steps on song take it to 97 % (benchmarks/
   tiny_defaults_feasibility.md, round 16);
2. the text stream reads a frozen random T5-layout encoder (MTV's and Ovi's recipe: one layer, d_model 32, the width
   the tiny MMDiT's text stream takes) over a word-level tokenizer of the song prompts ("a woman sings to the
   rising tune"): the prompt names the tune, so the melody is an input (paper 3.2: T5 features of the caption);
3. the MMDiT, fine-tuned from the shipped speech MMDiT (its transcript stream already times words) with
   ``train audiogen``'s loss on the sung stem's latents, lyrics through the lyrics stream, no video;
4. the vocoder is the speech default's, fine-tuned on the sung stems with a 2048-point STFT term beside its own
   (its frame-rate comb hides the men's pitch; benchmarks/tiny_defaults_feasibility.md, round 16). Nothing else
   reads it, so it trains in a second process (stages.Beside) beside the VAE and MMDiT.

Its card: 0.57 of the output's voiced frames within a semitone of the named tune's notes (another tune named: 0.16),
the women's voices on every clip, the men's on 6 of 16 (the others nearly unvoiced); a third as many voiced frames
as the truth, and words not yet on the beats (Int-Corr 0.15).
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from ...models.common.codecs.mel import MEL_16K, LogMel
from . import codecs
from .audiogen_omni import train_mmdit
from .stages import Beside, run_stage, start_run, write_train_report
from .world import world_clips

SYSTEM = "audiogen_omni_song"
FILES = {"mmdit": "mmdit_song.safetensors", "vae": "mel_vae_16k_song.safetensors",
         "vocoder": "bigvgan_16k_song.safetensors", "text_encoder": "t5_song.safetensors",
         "tokenizer": "t5_song.tokenizer.json"}
FOLDERS = {"mmdit": "soundstage_mmaudio", "vae": "soundstage_mmaudio", "vocoder": "soundstage_mmaudio",
           "text_encoder": "text_encoders", "tokenizer": "text_encoders"}
TEXT_DIM = 32  # the tiny MMDiT's text stream width (text_input_proj [hidden, 32])


@dataclass(frozen=True)
class Scale:
    train_clips: int
    seconds: float
    mmdit_steps: int
    vae_steps: int
    vae_lr: float = 5e-4
    vocoder_steps: int = 2
    vocoder_lr: float = 2e-4
    vocoder_frames: int = 64  # mel frames a crop (1 s): a few 2048-point frames each
    vocoder_floor: float = 1e-2  # as the speech vocoder's adversarial stage compares
    vocoder_fine: float = 1.0  # weight of the 2048-point term (codecs.VocoderLoss.FINE)
    size: int = 32  # frames are drawn but never read: the song mode here has no video
    batch: int = 8
    lr: float = 5e-4  # a fine-tune of the speech MMDiT
    ema: float = 0.99
    sample_steps: int = 16
    text_dropout: float = 0.1
    lyrics_dropout: float = 0.1
    # inference only, in no stage key: the sampler's guidance and the Vocoder node's refine_steps the default is
    # evaluated and shipped with (song_from_lyrics sets both)
    sample_cfg: float = 1.0
    vocoder_refine_steps: int = 4


SCALES = {
    "smoke": Scale(train_clips=4, seconds=1.0, mmdit_steps=2, vae_steps=2, batch=2, sample_steps=2),
    "feasibility": Scale(train_clips=64, seconds=4.0, mmdit_steps=600, vae_steps=300, vocoder_steps=100),
    # benchmarks/tiny_defaults_feasibility.md, round 16: with the song VAE, 10000 MMDiT steps at lr 1e-3 (0.52 of voiced
    # frames within a semitone) against 3000 at 5e-4 (0.41); guidance 3 and 32 refine passes picked on held-out
    # clips 100-115 (0.66 against 0.59 at guidance 1, 16 passes), which the card does not measure
    "full": Scale(train_clips=512, seconds=4.0, mmdit_steps=10000, vae_steps=4000, lr=1e-3, vocoder_steps=800,
                  sample_cfg=3.0, vocoder_refine_steps=32),
}


def prompt(who: str, tune: str) -> str:
    """The song prompt the default is trained and prompted with: who sings ("a woman" / "a man"), to which tune."""
    return f"{who} sings to the {tune} tune"


def song_prompt(truth: dict, tune: str | None = None) -> str:
    """A clip's prompt (``tune`` overrides the clip's own)."""
    from ...synthworld.speech import SPEAKERS

    return prompt("a woman" if SPEAKERS[truth["speaker"]][0].startswith("f") else "a man", tune or truth["tune"])


def every_prompt() -> list[str]:
    from ...synthworld.song import TUNES

    return [prompt(who, t) for who in ("a woman", "a man") for t in sorted(TUNES)]


def song_clips(split: str, count: int, sc: Scale, *, start: int = 0):
    return world_clips(split, count, task="speech", stems=("speech",), seconds=sc.seconds, size=sc.size,
                       start=start, voice="sing")


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def speech_parts():
    """(mel VAE, vocoder, MMDiT, its folder) of the installed speech default."""
    from . import audiogen_omni_speech as sp
    from .cli import _installed
    from .evaluate import load_mel_vae_and_vocoder

    folder = _installed(sp.SYSTEM)
    if folder is None:
        raise FileNotFoundError(f"{SYSTEM} stands on the speech default's codec and MMDiT: run "
                                f"train-defaults {sp.SYSTEM} --install first")
    from ...models.audiogen_omni.loader import load_mmdit

    vae, voc = load_mel_vae_and_vocoder(folder, sp.FILES)
    net, _ = load_mmdit(folder / sp.FILES["mmdit"], dtype=torch.float32)
    return vae, voc, net, folder


def train_vocoder(pairs: list, data: dict, sc: Scale, out: str, seed: int) -> tuple[dict, list]:
    """(the vocoder's weights, its stage's log): the speech default's vocoder fine-tuned on the sung stems."""
    from . import audiogen_omni_speech as sp

    _, voc, _, folder = speech_parts()
    stages: list[dict] = []
    key = {"data": data, "batch": sc.batch, "frames": sc.vocoder_frames, "floor": sc.vocoder_floor,
           "fine": sc.vocoder_fine, "init": file_hash(folder / sp.FILES["vocoder"])}
    voc = run_stage(voc.train().requires_grad_(True), codecs.VocoderLoss(sc.vocoder_floor, sc.vocoder_fine),
                    codecs.vocoder_batches(pairs, sc.batch, seed, frames=sc.vocoder_frames), sc.vocoder_steps,
                    sc.vocoder_lr, Path(out), seed, stages, "vocoder", resume=True, key=key)
    return {k: v.detach().clone() for k, v in voc.state_dict().items()}, stages


def text_encoder(weights: Path, max_length: int):
    from ...models.audiogen_omni.text import T5TextEncoder

    return T5TextEncoder.from_file(weights / FILES["text_encoder"], dtype=torch.float32, max_length=max_length)


def make_text_encoder(weights: Path, seed: int) -> None:
    """The tokenizer of every song prompt's words and the frozen random T5 beside it, into ``weights``."""
    from ...models.mtv.text import load_tokenizer
    from .mtv_parts import new_t5, save_t5
    from .ovi_parts import train_tokenizer

    train_tokenizer(every_prompt(), weights / FILES["tokenizer"])
    save_t5(new_t5(len(load_tokenizer(weights / FILES["tokenizer"])), TEXT_DIM, seed), weights / FILES["text_encoder"])


class AudioGenOmniSongRecipe:
    system = SYSTEM
    card_clips = 32
    files = FILES
    folders = FOLDERS
    can = ["sing a line of lyrics, a cappella, in one of the world's four espeak-ng voices to the tune the prompt names "
           "(\"a woman sings to the leaping tune\": rising, falling or leaping; 16 kHz, 4 s): on 32 held-out clips 0.57 "
           "of its voiced frames are within a semitone of the tune's notes (another tune named: 0.16), the women's "
           "voices 0.61-1.0 on every clip",
           "with guidance 3 and the Vocoder node's refine_steps 32, as song_from_lyrics sets them"]
    cannot = ["hold the tune in the men's voices on most clips: 10 of 16 come out nearly unvoiced (at most 2.5 % of "
              "frames voiced, none in tune), the other 6 in tune (0.54-1.0)",
              "voice as much as the truth (19 % of frames against 62 %) or put the words on the beats (Int-Corr 0.15; "
              "the speech default's 0.25 on these clips)",
              "any other melody, tempo or accompaniment; captions beyond who sings to which tune; real songs"]

    def train(self, out_dir: str, *, scale: str = "feasibility", seed: int = 0) -> dict:
        from ..audiogen_omni.train import DropoutConfig
        from ...models.audiogen_omni.loader import save_mmdit
        from . import audiogen_omni_speech as sp
        from .audiogen_omni_speech import lyrics_ids

        sc = SCALES[scale]
        out, weights, stages, (t0, cpu0) = start_run(out_dir, sc, seed)
        vae, voc, net, base = speech_parts()
        clips = song_clips("train", sc.train_clips, sc)
        pairs = codecs.waves_and_mels([c.audio for c in clips], LogMel(MEL_16K))
        data_s = time.time() - t0
        data = {"split": "train", "task": "song", "clips": sc.train_clips, "seconds": sc.seconds, "target": "sung stem"}
        with Beside(train_vocoder, pairs, data, sc, str(out), seed) as vocoder:
            # the speech VAE's normalisation is kept: the MMDiT starts from latents in that VAE's space
            vae = run_stage(vae.train().requires_grad_(True), codecs.vae_loss,
                            codecs.mel_batches([m for _, m in pairs], sc.batch, seed), sc.vae_steps, sc.vae_lr, out,
                            seed, stages, "vae", resume=True,
                            key={"data": data, "batch": sc.batch, "init": file_hash(base / sp.FILES["vae"])}).eval()
            save_file(codecs.vae_state_dict(vae), str(weights / FILES["vae"]))
            t1 = time.time()
            make_text_encoder(weights, seed + 1)
            # as many tokens as the MMDiT's learned empty prompt (text_seq_len 8: "a woman sings to the rising tune </s>")
            encoder = text_encoder(weights, net.config.text_seq_len)
            items = []
            with torch.no_grad():
                for c, (_, m) in zip(clips, pairs):
                    latent = vae.encode(m[None])[0][0].T.contiguous()
                    text = encoder.encode([song_prompt(c.truth)])
                    items.append({"latent": latent, "lyrics_ids": lyrics_ids(c.truth["transcript"], latent.shape[0]),
                                  "text": text.features[0], "text_mask": text.mask[0].to(torch.uint8)})
            features_s = time.time() - t1
            dropout = DropoutConfig(clip=0.0, sync=0.0, text=sc.text_dropout, lyrics=sc.lyrics_dropout)
            key = {"data": data, "init": file_hash(base / sp.FILES["mmdit"]), "vae": stages[-1]["key"],
                   "text": {name: file_hash(weights / FILES[name]) for name in ("text_encoder", "tokenizer")}}
            mmdit = train_mmdit(net.train().requires_grad_(True), items, sc, dropout, out, seed, stages, key=key)
            save_mmdit(mmdit.half(), weights / FILES["mmdit"])
            voc_state, voc_stages = vocoder.result()
        overlapped = [s["stage"] for s in stages] + ["features"]
        stages += [{**s, "beside": overlapped} for s in voc_stages]
        voc.load_state_dict(voc_state)  # the speech vocoder's layout, the weights fine-tuned beside
        save_file(codecs.vocoder_state_dict(voc), str(weights / FILES["vocoder"]))
        return write_train_report(out, SYSTEM, FILES, scale=scale, settings=asdict(sc), seed=seed, stages=stages,
                                  started=(t0, cpu0), train_seeds=[clips[0].index, clips[-1].index],
                                  data_s=round(data_s, 1), features_s=round(features_s, 1),
                                  stands_on="audiogen_omni_speech (its mel VAE, vocoder and MMDiT, fine-tuned)")

    def evaluate(self, weights_dir: str, out_dir: str, *, scale: str = "feasibility", clips: int = 16,
                 seed: int = 0) -> dict:
        from .song_eval import evaluate_song

        return evaluate_song(self, Path(weights_dir), Path(out_dir), SCALES[scale], clips=clips, seed=seed)


RECIPE = AudioGenOmniSongRecipe()

"""AudioGen-Omni tiny default for song from lyrics (``song_from_lyrics``): a caption and lyrics in, a sung line out.

The world's song clips (``clip_spec(..., voice="sing")``): the sentence sung a word a beat to the tune the caption
names (synthworld/song.py). What is new here is the MMDiT; everything it stands on is the speech default's:

1. the text stream reads a frozen random T5-layout encoder (MTV's and Ovi's recipe: one layer, d_model 32, the width
   the tiny MMDiT's text stream takes) over a word-level tokenizer of the song prompts ("a woman sings to the
   rising tune"): the prompt names the tune, so the melody is an input (paper 3.2: T5 features of the caption);
2. the MMDiT, fine-tuned from the shipped speech MMDiT (its transcript stream already times words) with
   ``train audiogen``'s loss on the sung stem, lyrics through the lyrics stream, no video;
3. the mel VAE and vocoder are the speech default's files, read where that default is installed (the workflow names
   them too), so the song default adds only its MMDiT and text encoder to the pack.

Not shipped yet: the fine-tuned MMDiT holds the tune on about 11 % of voiced frames (benchmarks/
tiny_defaults_feasibility.md, round 15; the vocoder's hop-rate buzz and unvoiced mels are the bounds).
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ...models.common.codecs.mel import MEL_16K, LogMel
from . import codecs
from .audiogen_omni import train_mmdit
from .stages import start_run, write_train_report
from .world import world_clips

SYSTEM = "audiogen_omni_song"
FILES = {"mmdit": "mmdit_song.safetensors", "text_encoder": "t5_song.safetensors",
         "tokenizer": "t5_song.tokenizer.json"}
FOLDERS = {"mmdit": "soundstage_mmaudio", "text_encoder": "text_encoders", "tokenizer": "text_encoders"}
TEXT_DIM = 32  # the tiny MMDiT's text stream width (text_input_proj [hidden, 32])


@dataclass(frozen=True)
class Scale:
    train_clips: int
    seconds: float
    mmdit_steps: int
    size: int = 32  # frames are drawn but never read: the song mode here has no video
    batch: int = 8
    lr: float = 5e-4  # a fine-tune of the speech MMDiT
    ema: float = 0.99
    sample_steps: int = 16
    text_dropout: float = 0.1
    lyrics_dropout: float = 0.1
    vocoder_refine_steps: int = 4  # as the speech default decodes (audiogen_omni_speech.Scale)


SCALES = {
    "smoke": Scale(train_clips=4, seconds=1.0, mmdit_steps=2, batch=2, sample_steps=2),
    "feasibility": Scale(train_clips=64, seconds=4.0, mmdit_steps=600),
    # benchmarks/tiny_defaults_feasibility.md, round 15: 10000 steps at lr 1e-3 hold the tune no better (0.116 vs 0.100)
    "full": Scale(train_clips=512, seconds=4.0, mmdit_steps=3000),
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


def speech_parts():
    """(mel VAE, vocoder, MMDiT, the MMDiT file) of the installed speech default."""
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
    return vae, voc, net, folder / sp.FILES["mmdit"]


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
    can = ["a sung-sounding line of the lyrics in one of the world's four espeak-ng voices, a cappella (16 kHz, 4 s)"]
    cannot = ["hold the tune the prompt names (about 11 % of voiced frames within a semitone) or the beats",
              "any other melody, tempo or accompaniment; captions beyond who sings to which tune; real songs"]

    def train(self, out_dir: str, *, scale: str = "feasibility", seed: int = 0) -> dict:
        from ..audiogen_omni.train import DropoutConfig
        from ...models.audiogen_omni.loader import save_mmdit
        from .audiogen_omni_speech import lyrics_ids

        sc = SCALES[scale]
        out, weights, stages, (t0, cpu0) = start_run(out_dir, sc, seed)
        vae, _, net, base = speech_parts()
        clips = song_clips("train", sc.train_clips, sc)
        data_s = time.time() - t0
        t1 = time.time()
        make_text_encoder(weights, seed + 1)
        # as many tokens as the MMDiT's learned empty prompt (text_seq_len 8: "a woman sings to the rising tune </s>")
        encoder = text_encoder(weights, net.config.text_seq_len)
        mel = LogMel(MEL_16K)
        items = []
        with torch.no_grad():
            for c in clips:
                (_, m), = codecs.waves_and_mels([c.audio], mel)
                latent = vae.encode(m[None])[0][0].T.contiguous()
                text = encoder.encode([song_prompt(c.truth)])
                items.append({"latent": latent, "lyrics_ids": lyrics_ids(c.truth["transcript"], latent.shape[0]),
                              "text": text.features[0], "text_mask": text.mask[0].to(torch.uint8)})
        features_s = time.time() - t1
        dropout = DropoutConfig(clip=0.0, sync=0.0, text=sc.text_dropout, lyrics=sc.lyrics_dropout)
        key = {"data": {"split": "train", "task": "song", "clips": sc.train_clips, "seconds": sc.seconds,
                        "target": "sung stem"},
               "init": hashlib.sha256(base.read_bytes()).hexdigest()[:16],
               "text": {name: hashlib.sha256((weights / FILES[name]).read_bytes()).hexdigest()[:16]
                        for name in ("text_encoder", "tokenizer")}}
        mmdit = train_mmdit(net.train().requires_grad_(True), items, sc, dropout, out, seed, stages, key=key)
        save_mmdit(mmdit.half(), weights / FILES["mmdit"])
        return write_train_report(out, SYSTEM, FILES, scale=scale, settings=asdict(sc), seed=seed, stages=stages,
                                  started=(t0, cpu0), train_seeds=[clips[0].index, clips[-1].index],
                                  data_s=round(data_s, 1), features_s=round(features_s, 1),
                                  stands_on="audiogen_omni_speech (mel VAE, vocoder; MMDiT fine-tuned from its own)")

    def evaluate(self, weights_dir: str, out_dir: str, *, scale: str = "feasibility", clips: int = 16,
                 seed: int = 0) -> dict:
        from .song_eval import evaluate_song

        return evaluate_song(self, Path(weights_dir), Path(out_dir), SCALES[scale], clips=clips, seed=seed)


RECIPE = AudioGenOmniSongRecipe()

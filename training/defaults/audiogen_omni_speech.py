"""AudioGen-Omni tiny default for video + transcript to speech (``video_to_speech``), stage by stage.

The talking face of the world's ``speech`` clips: silent frames and the clip's transcript in, the speech stem out.
Four stages, each on the shared trainer:

1. a mel VAE and vocoder (the V2A default's layouts and recipe, a wider vocoder finished with BigVGAN's
   discriminators) trained on speech as well as on effects: the V2A default's codec learned only impacts and beeps
   and loses the speech's envelope (round trip Int-Corr -0.07; benchmarks/tiny_defaults_feasibility.md, round 6).
   It is a codec of its own, so the V2A and Ovi defaults, which read the V2A codec's latents, stay as they are.
   The vocoder trains in a second process beside the other stages, which never read it (stages.Beside);
2. a Synchformer distilled onto the oracle stream with a third channel, the mouth's openness (sync_proxy.py),
   so that its tokens carry the lips' timing as well as the contacts and blinks;
3. the MMDiT with its transcript stream (paper 3.2: symbols padded to the frame budget, F5-TTS style, under
   PAAPI's rope), trained with ``train audiogen``'s loss on the speech stem.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from ...models.audiogen_omni.lyrics import LyricsTokenizer
from ...models.common.codecs.bigvgan import BigVGANConfig
from ...models.common.codecs.mel import MEL_16K, LogMel
from . import codecs
from .audiogen_omni import (TINY_SYNCHFORMER, new_mmdit, new_synchformer, save_weights, sync_features,
                           train_mmdit, train_synchformer)
from .stages import Beside, curve_entry, run_stage, work_folder, write_train_report
from .vocoder_gan import GANLoss, VocoderGAN
from .world import world_clips

SYSTEM = "audiogen_omni_speech"
FILES = {"vae": "mel_vae_16k_speech.safetensors", "vocoder": "bigvgan_16k_speech.safetensors",
         "synchformer": "synchformer_lips.safetensors", "mmdit": "mmdit_v2s.safetensors"}
SYNC_CHANNELS = 3  # impacts, beeps, the mouth (sync_proxy.KINDS + MOUTH)
# Wider than the V2A vocoder (0.34 M parameters, 16 channels at the full rate, against 8): the V2A size, on the true
# mel, gave speech Whisper hears nothing in (WER 1.0); this one, at 4000 steps of 8 crops, 0.77
# (benchmarks/tiny_defaults_feasibility.md, round 7). The loader infers the rates from the kernel sizes (2 x rate).
SPEECH_VOCODER = BigVGANConfig(num_mels=80, upsample_initial_channel=128, upsample_rates=(8, 8, 4),
                               upsample_kernel_sizes=(16, 16, 8), resblock_kernel_sizes=(3,),
                               resblock_dilation_sizes=((1, 3, 5),), sample_rate=16_000)


def speech_vocoder(sc: "Scale") -> BigVGANConfig:
    """The speech vocoder at a scale's width (``upsample_initial_channel``; each upsampling halves it), upsampling
    rates (kernels 2 x rate: what the loader infers them from) and resblock kernels (dilations 1, 3, 5 each: the
    loader reads the kernels from the weights and assumes those dilations)."""
    if math.prod(sc.vocoder_rates) != SPEECH_VOCODER.hop_length:
        raise ValueError(f"vocoder_rates {sc.vocoder_rates} multiply to {math.prod(sc.vocoder_rates)}, not the mel hop "
                         f"{SPEECH_VOCODER.hop_length}")
    return replace(SPEECH_VOCODER, upsample_initial_channel=sc.vocoder_width, upsample_rates=sc.vocoder_rates,
                   upsample_kernel_sizes=tuple(2 * r for r in sc.vocoder_rates),
                   resblock_kernel_sizes=sc.vocoder_kernels,
                   resblock_dilation_sizes=tuple((1, 3, 5) for _ in sc.vocoder_kernels))


@dataclass(frozen=True)
class Scale:
    train_clips: int  # talking clips the MMDiT learns from
    codec_clips: int  # talking clips (and as many effects-only clips) the codec learns from
    synchformer_clips: int
    seconds: float
    size: int
    vae_steps: int
    vocoder_steps: int
    synchformer_steps: int
    mmdit_steps: int
    batch: int = 8
    lr: float = 1e-3
    vocoder_batch: int = 8
    vocoder_lr: float = 2e-3
    vocoder_gan_steps: int = 0
    vocoder_gan_lr: float = 2e-4
    # benchmarks/tiny_defaults_feasibility.md, round 8: the regression terms stop comparing below 1e-2 and the
    # adversarial terms weigh 0.1 (vocoder-only WER 0.83 -> 0.50 in 1000 steps)
    vocoder_gan_floor: float = 1e-2
    vocoder_adversarial: float = 0.1
    vocoder_width: int = 128
    # one resblock per upsampling: BigVGAN's (3, 7, 11) costs 2.7 times a step, a kernel of 7 or 11 alone 1.05-1.1 times
    vocoder_kernels: tuple[int, ...] = (3,)
    vocoder_rates: tuple[int, ...] = (8, 8, 4)  # their product is the mel hop (256)
    # the discriminators: BigVGAN's MPD + MRD, or one kind (the MRD is 0.68 s of the 0.83 s they add to a step);
    # benchmarks/tiny_defaults_feasibility.md, round 10
    vocoder_gan_kinds: tuple[str, ...] = ("mpd", "mrd")
    vocoder_gan_channels: int = 16  # the discriminators' first width
    # what the vocoder learns from: "codec", the VAE's pairs (effects-only clips and talking mixes); "speech", the speech
    # stems of twice codec_clips talking clips, all the speech MMDiT makes (benchmarks/tiny_defaults_feasibility.md,
    # round 13: chain WER over 128 held-out generations 0.571 -> 0.50, mean 0.63 -> 0.56, but Dur-Err over 0.2 on 3
    # of the card's 32 clips: not the full scale's setting yet)
    vocoder_data: str = "codec"
    # inference only, in no stage key: the Vocoder node's refine_steps the default is evaluated and shipped with
    # (benchmarks/tiny_defaults_feasibility.md, round 14: the vocoder's band energies lose the words; 4 passes onto
    # the mel take the chain's WER from 0.58 / 0.65 to 0.35 / 0.35, mean over two sets of 32 held-out clips)
    vocoder_refine_steps: int = 4
    synchformer_lr: float = 2e-3
    synchformer_warmup: int = 50
    ema: float = 0.99
    sample_steps: int = 16
    hidden: int = 64
    sync_dropout: float = 0.1
    lyrics_dropout: float = 0.1

    def __post_init__(self):
        if self.vocoder_data not in ("codec", "speech"):
            raise ValueError(f"vocoder_data {self.vocoder_data!r}: expected 'codec' or 'speech'")


SCALES = {
    "smoke": Scale(train_clips=4, codec_clips=2, synchformer_clips=2, seconds=1.0, size=48, vae_steps=2,
                   vocoder_steps=2, vocoder_gan_steps=2, synchformer_steps=2, mmdit_steps=2, batch=2, sample_steps=2,
                   hidden=32),
    "feasibility": Scale(train_clips=64, codec_clips=32, synchformer_clips=32, seconds=4.0, size=128, vae_steps=300,
                         vocoder_steps=500, synchformer_steps=800, mmdit_steps=1000),
    # benchmarks/tiny_defaults_feasibility.md, rounds 6 and 7: 512 talking clips and 8000 MMDiT steps (0.55
    # Int-Corr without the lips, 0.82 with them); round 9: VAE 15000 steps (Griffin-Lim from its round trip: WER
    # 0.67 at 1500, 0.33 at 15000, 0.21 from the true mel), the wider vocoder 3000 regression steps of 8 crops then
    # 1000 adversarial ones, in as much time as the other stages take beside it; round 11: resblock kernel 11 (lr
    # 1e-3: 2e-3 stalled it) and 1900 steps against the MPD alone (WER on the MMDiT's own mels 0.67 -> 0.50 on the
    # card's 32 clips; round 12: 0.57 over 96)
    "full": Scale(train_clips=512, codec_clips=128, synchformer_clips=128, seconds=4.0, size=128, vae_steps=15000,
                  vocoder_steps=3000, vocoder_lr=1e-3, vocoder_kernels=(11,), vocoder_gan_steps=1900,
                  vocoder_gan_kinds=("mpd",), synchformer_steps=5000, mmdit_steps=8000),
}


def talking_clips(split: str, count: int, sc: Scale, *, stems=("speech",), start: int = 0):
    return world_clips(split, count, task="speech", stems=stems, seconds=sc.seconds, size=sc.size, start=start)


def lyrics_ids(transcript: str, frames: int) -> torch.Tensor:
    """[frames] ids of the transcript padded to the latent length, as the Lyrics Encode node gives the sampler."""
    return LyricsTokenizer().batch([transcript], frames)[0][0]


def codec_data(sc: Scale) -> tuple[list, dict]:
    """(wave, log-mel) pairs of effects-only clips and talking clips (their mix), which the VAE and vocoder learn
    from, and the stage key's description of them."""
    data = {"split": "train", "tasks": ["v2a", "speech"], "clips": sc.codec_clips, "seconds": sc.seconds,
            "size": sc.size}
    waves = [c.audio for c in world_clips("train", sc.codec_clips, task="v2a", stems=("effects",),
                                          seconds=sc.seconds, size=sc.size)]
    waves += [c.audio for c in talking_clips("train", sc.codec_clips, sc, stems=("speech", "effects"))]
    return codecs.waves_and_mels(waves, LogMel(MEL_16K)), data


def train_vae(pairs: list, data: dict, sc: Scale, out: Path, seed: int, stages: list):
    """The V2A codec's VAE recipe; the MMDiT reads its latents, so its stage key is passed on."""
    vae = codecs.new_vae(seed)
    codecs.set_mel_statistics(vae, [m for _, m in pairs])
    return run_stage(vae, codecs.vae_loss, codecs.mel_batches([m for _, m in pairs], sc.batch, seed), sc.vae_steps,
                     sc.lr, out, seed, stages, "vae", resume=True,
                     key={"data": data, "batch": sc.batch, "config": asdict(codecs.TINY_VAE)}).eval()


def speech_stems(sc: Scale) -> tuple[list, dict]:
    """(wave, log-mel) pairs of the speech stems of 2 x ``codec_clips`` talking clips of the train split (as many
    clips as the codec's pairs), and the stage key's description of them."""
    data = {"split": "train", "tasks": ["speech"], "stems": ["speech"], "clips": 2 * sc.codec_clips,
            "seconds": sc.seconds, "size": sc.size}
    return codecs.waves_and_mels([c.audio for c in talking_clips("train", 2 * sc.codec_clips, sc)], LogMel(MEL_16K)), data


def train_vocoder(pairs: list, data: dict, sc: Scale, out: str, seed: int) -> tuple[dict, list]:
    """(the vocoder's weights, its stages' logs): the regression vocoder, then ``vocoder_gan_steps`` with BigVGAN's
    discriminators. Nothing else in the recipe reads it, so it trains in a second process (stages.Beside).

    The regression stage keeps the log-mel's own floor: trained at the GAN stage's raised floor from the start, the
    vocoder filled the pauses with hiss at -34 to -38 dB (its speech span became the whole clip), against -67 to
    -70 dB when only the GAN stage raises it (benchmarks/tiny_defaults_feasibility.md, rounds 8 and 9)."""
    stages: list[dict] = []
    if sc.vocoder_data == "speech":
        # rendered in this process, so its time is the branch's: a step of its own in the report
        t0, cpu0 = time.time(), time.process_time()
        pairs, data = speech_stems(sc)
        stages.append(curve_entry("vocoder_data", 0, time.time() - t0, time.process_time() - cpu0, []))
    config = speech_vocoder(sc)
    key = {"data": data, "batch": sc.vocoder_batch, "config": asdict(config)}
    voc = run_stage(codecs.new_vocoder(seed, config), codecs.VocoderLoss(),
                    codecs.vocoder_batches(pairs, sc.vocoder_batch, seed), sc.vocoder_steps, sc.vocoder_lr, Path(out),
                    seed, stages, "vocoder", resume=True, schedule="cosine", key=key)
    # settings added after the shipped run enter the key only when changed from their defaults, so that run's work
    # folder still resumes
    added = {name: getattr(sc, f"vocoder_gan_{name}") for name in ("kinds", "channels")
             if getattr(sc, f"vocoder_gan_{name}") != Scale.__dataclass_fields__[f"vocoder_gan_{name}"].default}
    gan_key = {**key, "after": stages[-1]["key"], "floor": sc.vocoder_gan_floor, "adversarial": sc.vocoder_adversarial,
               **added}
    torch.manual_seed(seed + 5)
    gan = run_stage(VocoderGAN(voc, sc.vocoder_gan_channels, sc.vocoder_gan_kinds),
                    GANLoss(sc.vocoder_gan_floor, sc.vocoder_adversarial),
                    codecs.vocoder_batches(pairs, sc.vocoder_batch, seed + 1), sc.vocoder_gan_steps,
                    sc.vocoder_gan_lr, Path(out), seed, stages, "vocoder_gan", resume=True, key=gan_key)
    return {k: v.detach().clone() for k, v in gan.g.state_dict().items()}, stages


class AudioGenOmniSpeechRecipe:
    system = SYSTEM
    # a 16-clip mean of Int-Corr moves by about +-0.07 (benchmarks/tiny_defaults_feasibility.md, DualDub): 32 halve
    # its variance, and a clip costs five 16-step samples
    card_clips = 32
    files = FILES
    folders = {key: "soundstage_mmaudio" for key in FILES}
    can = ["video + transcript to speech in the synthetic world: the drawn face's sentence, timed by its lips and the "
           "transcript (16 kHz, 4 s clips; the world's four espeak-ng voices)",
           "words Whisper tiny.en follows as well as the world's own speech when the Vocoder node refines onto the mel "
           "(refine_steps 4, as video_to_speech does): WER median 0.21 here and 0.33 over 96 other held-out "
           "generations, 0.33 on the true speech (benchmarks/tiny_defaults_feasibility.md, round 14)"]
    cannot = ["words without the refinement: the small vocoder's band energies lose them (refine_steps 0: WER median "
              "0.57 over the same 96 generations)",
              "a chosen voice: there is no speaker reference input, and the voice is one of the world's four, not picked",
              "sound effects with the speech (the V2A default does those), song, captions, real videos"]

    def train(self, out_dir: str, *, scale: str = "feasibility", seed: int = 0) -> dict:
        from ..audiogen_omni.train import DropoutConfig

        sc = SCALES[scale]
        out = work_folder(out_dir, sc, seed)
        stages: list[dict] = []
        t0, cpu0 = time.time(), time.process_time()
        clips = talking_clips("train", sc.train_clips, sc)
        pairs, codec = codec_data(sc)
        data_s = time.time() - t0
        with Beside(train_vocoder, pairs, codec, sc, str(out), seed) as vocoder:
            sf = train_synchformer(new_synchformer(seed), clips[: sc.synchformer_clips], sc, out, seed, stages,
                                   resume=True, lips=True,
                                   key={"data": {"split": "train", "task": "speech", "clips": sc.synchformer_clips,
                                                 "seconds": sc.seconds, "size": sc.size, "channels": SYNC_CHANNELS},
                                        "batch": sc.batch, "config": asdict(TINY_SYNCHFORMER)})
            after = {"synchformer": stages[-1]["key"]}
            vae = train_vae(pairs, codec, sc, out, seed, stages)
            after["vae"] = stages[-1]["key"]

            t1 = time.time()
            mel = LogMel(MEL_16K)
            items = []
            with torch.no_grad():
                for c in clips:
                    (_, m), = codecs.waves_and_mels([c.audio], mel)
                    mean, _ = vae.encode(m[None])
                    latent = mean[0].T.contiguous()
                    items.append({"latent": latent, "sync": sync_features(sf, c.frames, c.fps, sc.seconds),
                                  "lyrics_ids": lyrics_ids(c.truth["transcript"], latent.shape[0])})
            net = new_mmdit(sc, items, seed)
            features_s = time.time() - t1
            dropout = DropoutConfig(clip=0.0, sync=sc.sync_dropout, text=0.0, lyrics=sc.lyrics_dropout)
            mmdit = train_mmdit(net, items, sc, dropout, out, seed, stages,
                                key={"data": {"split": "train", "task": "speech", "clips": sc.train_clips,
                                              "seconds": sc.seconds, "size": sc.size, "target": "speech"},
                                     "after": after})
            voc_state, voc_stages = vocoder.result()
        # the features were computed inside the branch's block as well (benchmarks/tiny_defaults_feasibility.md, round 11)
        overlapped = [s["stage"] for s in stages] + ["features"]
        stages += [{**s, "beside": overlapped} for s in voc_stages]
        voc = codecs.new_vocoder(seed, speech_vocoder(sc))
        voc.load_state_dict(voc_state)
        voc.eval()
        save_weights(out, FILES, vae, voc, sf, mmdit)
        return write_train_report(out, SYSTEM, FILES, scale=scale, settings=asdict(sc), seed=seed, stages=stages,
                                  started=(t0, cpu0), train_seeds=[clips[0].index, clips[-1].index],
                                  data_s=round(data_s, 1), features_s=round(features_s, 1))

    def evaluate(self, weights_dir: str, out_dir: str, *, scale: str = "feasibility", clips: int = 16,
                 seed: int = 0) -> dict:
        from .speech_eval import evaluate_v2s

        return evaluate_v2s(self, Path(weights_dir), Path(out_dir), SCALES[scale], clips=clips, seed=seed)


RECIPE = AudioGenOmniSpeechRecipe()

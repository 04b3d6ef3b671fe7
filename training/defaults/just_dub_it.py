"""JUST-DUB-IT tiny default: the base audio-video model in LTX-2.0's layout (video VAE, audio VAE + vocoder, a
frozen random Gemma-3-layout text encoder with the LTX-2 text connectors, the AV DiT) trained on the world's
joint clips in English, French and German; then (part 2) the dubbing pairs and the in-context dubbing LoRA.

Layout (what part 2, the dubbing data / LoRA / eval / workflow, builds on):

- Files. ``FILES["model"]`` = ``ltx2_av.safetensors`` in ``defaults/soundstage_ltx2/soundstage-tiny/just_dub_it/``:
  ONE native LTX-2.0 single file (transformer ``model.diffusion_model.*``, text connectors, video VAE ``vae.*``,
  audio VAE ``audio_vae.*``, vocoder ``vocoder.*``; header ``config`` with ``transformer`` / ``audio_vae`` /
  ``vocoder`` sections), fp16, read strictly by ``models.just_dub_it.bundle.load_ltx2_parts`` (the Load LTX-2 AV
  Model node). ``FILES["text_encoder"]`` = ``gemma3_text.safetensors`` in ``defaults/text_encoders/soundstage-tiny/
  just_dub_it/``: Gemma-3 in ComfyUI's single-file layout with its SentencePiece model in ``spiece_model``
  (``models.just_dub_it.gemma_file``; the Load LTX-2 Text Encoder node, ``max_tokens = Scale.max_tokens``).
  Part 2 adds ``FILES["lora"]`` (folder ``loras``). The writer is ``models/just_dub_it/native_writer.py``.
- Clips. ``jdi_clips(split, count, sc, language=...)``: the world's ``full`` clips (every clip speaks) through
  ``synthworld.splits.clip_spec`` at LTX-2's 25 fps (JUST-DUB-IT's default rate), ``sc.frames`` = 1 + 8k frames
  (``sc.latent_frames`` latent frames), ``sc.size`` px square, audio = effects + speech stems at 16 kHz mono (the
  world's music is an off-screen track the picture cannot predict: left out of audio and prompt, as Ovi's default).
  The same (split, index) in another language is the dubbing pair (same scene, speaker, sentence id).
- Prompts. ``prompt(caption)``: the world's caption without its music, e.g. ``a red ball bounces, a lamp blinks
  with a beep, while a man says in French: "lena voit la voiture bleue aujourd'hui"`` (English has no ``in ...``).
- Latents. Always through the loaders and ``models.just_dub_it.av_codec`` (encode_video / waveform_to_mel /
  encode_audio / decode_*), the code the nodes run; prompts through ``text.encode_prompts`` with
  ``sc.max_tokens``. ``load_base(weights_dir)`` returns (LTX2Parts, GemmaEncoder) from a weights folder.
- Work folder. ``<out>/weights/`` holds the files above; each stage trains in ``<out>/<stage>/`` and resumes by
  key (stages.run_stage): ``video_vae_frames``, ``video_vae``, ``audio_vae``, ``vocoder``, ``dit``. ``train()``
  builds the base model (``train_base``) and then runs part 2's stages at the marked place.
"""
from __future__ import annotations

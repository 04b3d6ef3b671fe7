"""The official public source of every model file the example workflows name, and where each URL was read.

test_workflow_models.py checks each loader's ``properties.models`` entry (what ComfyUI's Missing Models panel
offers) against this table. Reference commits: hkchengrex/MMAudio 974010a, character-ai/Ovi 5b69b25,
Lightricks/LTX-2 400fd31 (LTX-2.0 README at 822ce3c), Dr-Ake/just-dub-it 75d06a4, suimuc/MTV_Framework 5704fe6,
jishengpeng/WavTokenizer 5cf440d.
"""
from __future__ import annotations

HF = "https://huggingface.co"

# file name (the loader's widget value) -> (url, where the url was read)
SOURCES: dict[str, tuple[str, str]] = {
    "v1-16.pth": (f"{HF}/hkchengrex/MMAudio/resolve/main/ext_weights/v1-16.pth",
                  "MMAudio mmaudio/utils/download_utils.py + README 'also available at huggingface.co/hkchengrex/MMAudio'; "
                  "Ovi download_weights.py fetches ext_weights/v1-16.pth from that repo"),
    "best_netG.pt": (f"{HF}/hkchengrex/MMAudio/resolve/main/ext_weights/best_netG.pt",
                     "MMAudio mmaudio/utils/download_utils.py + README; Ovi download_weights.py (ext_weights/best_netG.pt)"),
    "model_960x960_10s.safetensors": (f"{HF}/chetwinlow1/Ovi/resolve/main/model_960x960_10s.safetensors",
                                      "Ovi download_weights.py (960x960_10s)"),
    "models_t5_umt5-xxl-enc-bf16.pth": (f"{HF}/Wan-AI/Wan2.2-TI2V-5B/resolve/main/models_t5_umt5-xxl-enc-bf16.pth",
                                        "Ovi download_weights.py (Wan-AI/Wan2.2-TI2V-5B allow_patterns)"),
    "Wan2.2_VAE.pth": (f"{HF}/Wan-AI/Wan2.2-TI2V-5B/resolve/main/Wan2.2_VAE.pth",
                       "Ovi download_weights.py (Wan-AI/Wan2.2-TI2V-5B allow_patterns)"),
    "ltx-2-19b-dev.safetensors": (f"{HF}/Lightricks/LTX-2/resolve/main/ltx-2-19b-dev.safetensors",
                                  "LTX-2 README @822ce3c; just-dub-it packages/ltx-pipelines/README.md (--checkpoint_path)"),
    "ltx-2-19b-ic-lora-lipdubbing.safetensors": (
        f"{HF}/justdubit/justdubit/resolve/main/ltx-2-19b-ic-lora-lipdubbing.safetensors",
        "just-dub-it packages/ltx-pipelines/README.md (--lora, 'JustDubit LoRA')"),
    "gemma-3-12b-it-qat-q4_0-unquantized/model-00001-of-00005.safetensors": (
        f"{HF}/google/gemma-3-12b-it-qat-q4_0-unquantized/resolve/main/model-00001-of-00005.safetensors",
        "LTX-2 MODELS-LTX-2.3.md and README @822ce3c, just-dub-it ltx-pipelines README (--gemma_root: the whole "
        "folder); the first of its 5 shards, as ComfyUI lists files"),
    "ltx-2.3-22b-distilled-1.1.safetensors": (f"{HF}/Lightricks/LTX-2.3/resolve/main/ltx-2.3-22b-distilled-1.1.safetensors",
                                              "LTX-2 MODELS-LTX-2.3.md"),
    "ltx-2.3-spatial-upscaler-x2-1.1.safetensors": (
        f"{HF}/Lightricks/LTX-2.3/resolve/main/ltx-2.3-spatial-upscaler-x2-1.1.safetensors", "LTX-2 MODELS-LTX-2.3.md"),
    "ltx-2.3-22b-ic-lora-dubit-0.9.safetensors": (
        f"{HF}/Lightricks/LTX-2.3-22b-IC-LoRA-DubIt/resolve/main/ltx-2.3-22b-ic-lora-dubit-0.9.safetensors",
        "LTX-2 MODELS-LTX-2.3.md (LTX-2.3-22b-IC-LoRA-DubIt)"),
    "97d170e1-dbb4db15.th": (
        "https://github.com/ZFTurbo/MVSEP-CDX23-Cinematic-Sound-Demixing/releases/download/v.1.0.0/97d170e1-dbb4db15.th",
        "MTV data_process/demix.py (remote_url + model_name)"),
}

# Named only in a Note (what to use instead of the tiny default for real videos).
NOTE_ONLY: dict[str, tuple[str, str]] = {
    # video_to_speech and song_from_lyrics run on the shipped defaults; their Notes name MMAudio's 44.1 kHz codec
    "v1-44.pth": (f"{HF}/hkchengrex/MMAudio/resolve/main/ext_weights/v1-44.pth",
                  "MMAudio mmaudio/utils/download_utils.py + README (the Hugging Face copy of the v0.1 release)"),
    "bigvgan_generator.pt": (f"{HF}/nvidia/bigvgan_v2_44khz_128band_512x/resolve/main/bigvgan_generator.pt",
                             "MMAudio mmaudio/ext/autoencoder/autoencoder.py (BigVGANv2.from_pretrained of that repo) and "
                             "mmaudio/ext/bigvgan_v2/bigvgan.py (hf_hub_download filename='bigvgan_generator.pt')"),
    # t2av_ovi and i2av_ovi run on the shipped default; their Notes name the released 720x720 model
    "model.safetensors": (f"{HF}/chetwinlow1/Ovi/resolve/main/model.safetensors",
                          "Ovi download_weights.py (720x720_5s -> model.safetensors from chetwinlow1/Ovi)"),
    # soundtrack_dualdub runs on the shipped default; its Note names what training one for real videos takes
    "wavtokenizer_large_speech_320_24k.ckpt": (
        f"{HF}/novateur/WavTokenizer-large-speech-75token/resolve/main/wavtokenizer_large_speech_320_24k.ckpt",
        "WavTokenizer README model table (WavTokenizer-large-320-24k-4096, 75 tokens/s)"),
    "clip_vision_l.safetensors": (f"{HF}/openai/clip-vit-large-patch14/resolve/main/model.safetensors",
                                  "DualDub paper 3.2 ('the visual encoder of the CLIP model', variant not named): "
                                  "OpenAI's ViT-L/14"),
    "mmaudio_large_44k_v2.pth": (f"{HF}/hkchengrex/MMAudio/resolve/main/weights/mmaudio_large_44k_v2.pth",
                                 "MMAudio mmaudio/utils/download_utils.py"),
    "open_clip_pytorch_model.bin": (f"{HF}/apple/DFN5B-CLIP-ViT-H-14-384/resolve/main/open_clip_pytorch_model.bin",
                                    "MMAudio mmaudio/model/utils/features_utils.py (hf-hub:apple/DFN5B-CLIP-ViT-H-14-384, "
                                    "open_clip's file name)"),
    # video_to_speech runs on the shipped default; its Note names the real visual encoders for a model of one's own
    "synchformer_state_dict.pth": (f"{HF}/hkchengrex/MMAudio/resolve/main/ext_weights/synchformer_state_dict.pth",
                                   "MMAudio mmaudio/utils/download_utils.py + README"),
    "G14_fullcc2.5b.pt": ("https://dl.fbaipublicfiles.com/MMPT/metaclip/G14_fullcc2.5b.pt",
                          "MetaCLIP README / open_clip pretrained.py (ViT-bigG-14-quickgelu, metaclip_fullcc); "
                          "AudioGen-Omni paper 3.1 names MetaCLIP ViT-bigG-14-QuickGELU"),
    # audio_to_video_mtv runs on the shipped default; its Note names the released MTV files
    "mtv_single/mp_rank_00_model_states.pt": (f"{HF}/BAAI/MTVCraft/resolve/main/mtv/single/1/mp_rank_00_model_states.pt",
                                              "MTV README 'Download Pretrained Models' (BAAI/MTVCraft, mtv/single/1/)"),
    "wav2vec2-base-960h/model.safetensors": (f"{HF}/facebook/wav2vec2-base-960h/resolve/main/model.safetensors",
                                             "MTV README (facebook/wav2vec2-base-960h; its tree lists model.safetensors)"),
    "t5xxl_fp16.safetensors": (f"{HF}/comfyanonymous/flux_text_encoders/resolve/main/t5xxl_fp16.safetensors",
                               "ComfyUI's own blueprints (T5-v1.1-XXL encoder); MTV README names google/t5-v1_1-xxl"),
    "cogvideox_5b_vae.safetensors": (f"{HF}/THUDM/CogVideoX-5b/resolve/main/vae/diffusion_pytorch_model.safetensors",
                                     "MTV README (CogVideoX-5B 3D VAE); the diffusers-layout file of THUDM/CogVideoX-5b, "
                                     "the layout the loader reads"),
}

# Files a workflow names that have no public release: no url can be given; the workflow's Note says so.
UNRELEASED: dict[str, str] = {
    "dualdub.safetensors": "DualDub: paper only, no released weights",
    "audiogen_omni_44k.safetensors": "AudioGen-Omni: paper and demo page only, no released weights",
}

# Files the pack ships (defaults/): listed first in each loader, nothing to download.
SHIPPED_PREFIX = "soundstage-tiny/"

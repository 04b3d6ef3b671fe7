"""DualDub configuration: every size is config, so the tiny test model and a full model are one class."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

# Paper 3.4, stage 1: the V2A task always uses this text prompt (and a zero speaker embedding).
V2A_PROMPT = "Generate audio for the video."
TASKS = ("v2a", "tts", "v2st")
# Paper 3.4: stage 1 V2A; stage 2 adds TTS; stage 3 adds V2ST; each keeps the earlier tasks.
STAGE_TASKS = {1: ("v2a",), 2: ("v2a", "tts"), 3: ("v2a", "tts", "v2st")}


@dataclass
class DualDubConfig:
    codebook_size: int = 4096          # WavTokenizer codes; both tracks share the codec (paper 3.2)
    token_rate: float = 75.0           # codec tokens per second (40 or 75 for the releases)
    codec_sample_rate: int = 24000
    text_vocab_size: int = 8000
    video_dim: int = 1024              # CLIP vision hidden size
    frame_stride: int = 3              # paper 3.2: one frame in every three
    aligner_layers: int = 1
    aligner_heads: int = 8
    speaker_dim: int = 256
    speaker_channels: int = 256
    speaker_heads: int = 4
    n_mels: int = 80
    speaker_seconds: float = 3.0       # paper 3.2: a 3 s reference
    # The decoder trunk, as a transformers config dict (``model_type`` qwen2 or llama).
    lm: dict = field(default_factory=lambda: {
        "model_type": "qwen2", "hidden_size": 896, "num_hidden_layers": 24, "num_attention_heads": 14,
        "num_key_value_heads": 2, "intermediate_size": 4864, "max_position_embeddings": 8192,
        "rope_theta": 1000000.0, "vocab_size": 1,
    })

    @property
    def hidden_size(self) -> int:
        return int(self.lm["hidden_size"])

    # Per-stream vocabulary: the codes, then PAD, BOS, EOS.
    @property
    def pad_id(self) -> int:
        return self.codebook_size

    @property
    def bos_id(self) -> int:
        return self.codebook_size + 1

    @property
    def eos_id(self) -> int:
        return self.codebook_size + 2

    @property
    def stream_vocab(self) -> int:
        return self.codebook_size + 3

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "DualDubConfig":
        return cls(**json.loads(text))

"""Ovi's twin-backbone fusion model (paper 4.1): a video and an audio Wan tower, fused in every block.

Per block, in the reference's order: audio self-attention, video self-attention, audio
cross-attention (text + video tokens) and FFN, then video cross-attention (text + the audio state
from before the audio cross-attention) and FFN.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from .tower import TowerConfig, TowerInputs, WanTower


@dataclass
class FusionConfig:
    video: TowerConfig
    audio: TowerConfig

    def __post_init__(self):
        if self.video.num_layers != self.audio.num_layers:
            raise ValueError("Ovi's towers must have the same number of blocks "
                             f"(video {self.video.num_layers}, audio {self.audio.num_layers})")


class OviFusion(nn.Module):
    def __init__(self, config: FusionConfig):
        super().__init__()
        self.config = config
        self.video_model = WanTower(config.video)
        self.audio_model = WanTower(config.audio)
        # Set by memory.BlockSwap: a context manager factory called around each fusion block.
        self.block_context = None

    @property
    def num_blocks(self) -> int:
        return len(self.video_model.blocks)

    def fusion_block(self, i: int, vid: torch.Tensor, aud: torch.Tensor, v: TowerInputs, a: TowerInputs):
        vb, ab = self.video_model.blocks[i], self.audio_model.blocks[i]
        am, vm = ab.mod(a.e0, a.groups), vb.mod(v.e0, v.groups)
        aud = ab.self_attention(aud, am, a.rope)
        vid = vb.self_attention(vid, vm, v.rope)
        aud_before_cross = aud
        aud = ab.cross_and_ffn(aud, am, a.context, a.rope, vid, v.rope)
        vid = vb.cross_and_ffn(vid, vm, v.context, v.rope, aud_before_cross, a.rope)
        return vid, aud

    def forward(self, vid: torch.Tensor, audio: torch.Tensor, t: torch.Tensor,
                vid_context: torch.Tensor, audio_context: torch.Tensor, *,
                first_frame_clean: bool = False, slg_layer: int | None = None,
                slg_rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Velocities for a batch.

        vid [B, 48, F, H, W]; audio [B, L, 20]; t [B] or [1] (0..1000); contexts [B, Lt, text_dim].
        ``slg_layer``: skip that fusion block (skip-layer guidance), for the rows flagged in
        ``slg_rows`` ([B] bool; all rows when None), so a positive and an SLG-negative pass share
        one batched forward. Returns video [B, 48, F, H, W] and audio [B, L, 20] in float32.
        """
        v = self.video_model.prepare(vid, t, vid_context, first_frame_clean)
        a = self.audio_model.prepare(audio, t, audio_context)
        x_v, x_a = v.x, a.x
        for i in range(self.num_blocks):
            ctx = self.block_context(i) if self.block_context is not None else nullcontext()
            with ctx:
                if slg_layer is not None and slg_layer > 0 and i == slg_layer:
                    if slg_rows is None or bool(slg_rows.all()):
                        continue
                    x_v, x_a = self._partial_block(i, x_v, x_a, v, a, ~slg_rows.to(x_v.device))
                    continue
                x_v, x_a = self.fusion_block(i, x_v, x_a, v, a)
        return self.video_model.finish(x_v, v), self.audio_model.finish(x_a, a)

    def _partial_block(self, i, x_v, x_a, v: TowerInputs, a: TowerInputs, run: torch.Tensor):
        """Run block ``i`` on the rows in ``run`` only; the others pass through unchanged."""
        def rows(ti: TowerInputs) -> TowerInputs:
            pick = (lambda z: z[run] if z.shape[0] == run.shape[0] else z)
            return TowerInputs(pick(ti.x), ti.grid, ti.rope, pick(ti.e), pick(ti.e0), ti.groups, pick(ti.context))
        nv, na = self.fusion_block(i, x_v[run], x_a[run], rows(v), rows(a))
        x_v, x_a = x_v.clone(), x_a.clone()
        x_v[run], x_a[run] = nv, na
        return x_v, x_a

"""ArcFace face recognition (Deng et al. 2019): the IResNet backbone and its 112x112 face crops.

The backbone follows insightface's ``arcface_torch`` IResNet, so its ``backbone.pth`` files (r18 to
r200, e.g. ``ms1mv3_arcface_r100_fp16/backbone.pth``) load strictly under their own key names; the
depth and widths are read from the file. Crops are aligned to insightface's 5-point template by a
similarity transform and normalised as its inference script does (RGB, ``x / 127.5 - 1``).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import CheckpointError, build_and_load, load_file

# insightface's arcface_torch/backbones/iresnet.py: blocks per stage of each released depth
IRESNET_LAYERS = {"r18": (2, 2, 2, 2), "r34": (3, 4, 6, 3), "r50": (3, 4, 14, 3), "r100": (3, 13, 30, 3),
                  "r200": (6, 26, 60, 6)}
IRESNET_WIDTHS = (64, 128, 256, 512)
CROP_SIZE = 112
# insightface utils/face_align.py ``arcface_dst``: image-left eye, image-right eye, nose tip,
# image-left and image-right mouth corner, in pixels of the 112x112 crop
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]])


class IBasicBlock(nn.Module):
    """Pre-activation residual block (BN - conv - BN - PReLU - conv(stride) - BN) + shortcut."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        eps = 1e-5
        self.bn1 = nn.BatchNorm2d(in_channels, eps=eps)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels, eps=eps)
        self.prelu = nn.PReLU(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels, eps=eps)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride, bias=False),
                                            nn.BatchNorm2d(channels, eps=eps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


class IResNet(nn.Module):
    """[B, 3, 112, 112] normalised RGB crops -> [B, num_features] face embeddings (not unit length)."""

    def __init__(self, layers: Sequence[int] = IRESNET_LAYERS["r100"], widths: Sequence[int] = IRESNET_WIDTHS,
                 num_features: int = 512):
        super().__init__()
        if len(layers) != 4 or len(widths) != 4:
            raise ValueError(f"IResNet has 4 stages; got layers {tuple(layers)} and widths {tuple(widths)}")
        stem = widths[0]
        self.conv1 = nn.Conv2d(3, stem, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem, eps=1e-5)
        self.prelu = nn.PReLU(stem)
        in_ch = stem
        for i, (blocks, width) in enumerate(zip(layers, widths), 1):
            stage = [IBasicBlock(in_ch, width, stride=2)] + [IBasicBlock(width, width) for _ in range(blocks - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*stage))
            in_ch = width
        self.bn2 = nn.BatchNorm2d(in_ch, eps=1e-5)
        side = CROP_SIZE // 16  # four stride-2 stages: 112 -> 7
        self.fc = nn.Linear(in_ch * side * side, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.features(self.fc(torch.flatten(self.bn2(x), 1)))


def iresnet_config(sd: dict[str, torch.Tensor]) -> dict:
    """IResNet constructor arguments read from a state dict (depth per stage, widths, embedding size)."""
    try:
        layers = [len({m.group(1) for k in sd if (m := re.match(rf"layer{i}\.(\d+)\.", k))}) for i in range(1, 5)]
        widths = [int(sd[f"layer{i}.0.conv1.weight"].shape[0]) for i in range(1, 5)]
        num_features = int(sd["fc.weight"].shape[0])
    except KeyError as exc:
        raise CheckpointError(f"not an insightface IResNet state dict: no {exc.args[0]}") from exc
    return {"layers": tuple(layers), "widths": tuple(widths), "num_features": num_features}


def load_arcface(path: str | Path, device: str | torch.device = "cpu") -> IResNet:
    """An arcface_torch ``backbone.pth`` (or a safetensors copy), loaded strictly, in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ArcFace weights not found: {path} (an insightface arcface_torch backbone.pth, "
                                "e.g. ms1mv3_arcface_r100_fp16; none ships with the pack)")
    sd = load_file(path)
    if all(k.startswith("module.") for k in sd):  # saved from DistributedDataParallel
        sd = {k[len("module."):]: v for k, v in sd.items()}
    # Some exports drop BatchNorm's step counter; inference never reads it.
    for key in [k[: -len(".running_mean")] for k in sd if k.endswith(".running_mean")]:
        sd.setdefault(f"{key}.num_batches_tracked", torch.zeros((), dtype=torch.long))
    cfg = iresnet_config(sd)
    model = build_and_load(lambda: IResNet(**cfg), sd, context=f"ArcFace {path.name}", dtype=torch.float32)
    return model.eval().to(device)


# ---- face crops -------------------------------------------------------------------------------

def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """[2, 3] least-squares rotation + uniform scale + shift taking ``src`` points onto ``dst``
    (Umeyama 1991; what insightface gets from skimage's SimilarityTransform)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    u, sv, vt = np.linalg.svd(d0.T @ s0 / len(src))
    sign = np.array([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
    rot = u @ np.diag(sign) @ vt
    scale = (sv * sign).sum() / ((s0 ** 2).sum() / len(src))
    return np.hstack([scale * rot, (mu_d - scale * rot @ mu_s)[:, None]])


def align_faces(frames: torch.Tensor, points: np.ndarray, size: int = CROP_SIZE) -> torch.Tensor:
    """[N, H, W, 3] frames (uint8 or 0..1) + [N, 5, 2] pixel landmarks -> [N, 3, size, size] crops in
    0..255, warped like ``cv2.warpAffine(img, M, (size, size), borderValue=0)`` (bilinear, black outside)."""
    x = (frames.float() if frames.dtype == torch.uint8 else frames.float() * 255).permute(0, 3, 1, 2)
    n, _, h, w = x.shape
    template = ARCFACE_TEMPLATE * size / CROP_SIZE
    axis = torch.arange(size, dtype=torch.float64)
    v, u = torch.meshgrid(axis, axis, indexing="ij")
    out_px = torch.stack([u.flatten(), v.flatten(), torch.ones(size * size, dtype=torch.float64)])  # [3, size*size]
    grids = []
    for pts in points:
        m = np.vstack([similarity_transform(pts, template), [0, 0, 1]])
        src = torch.from_numpy(np.linalg.inv(m)[:2]) @ out_px  # crop pixel -> frame pixel
        norm = torch.stack([src[0] / (w - 1), src[1] / (h - 1)], -1) * 2 - 1  # pixel centres, align_corners=True
        grids.append(norm.reshape(size, size, 2))
    grid = torch.stack(grids).to(x)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def arcface_input(crops: torch.Tensor) -> torch.Tensor:
    """0..255 RGB crops -> the backbone's input range (insightface: ``img / 255 - 0.5) / 0.5``)."""
    return crops / 127.5 - 1.0


@torch.no_grad()
def face_embeddings(model: IResNet, crops: torch.Tensor) -> torch.Tensor:
    """[N, 3, 112, 112] 0..255 crops -> [N, D] unit-length embeddings (cosine = dot product)."""
    p = next(model.parameters())
    return F.normalize(model(arcface_input(crops).to(p)).float(), dim=-1)

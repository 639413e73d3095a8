"""Pixel encoder: camera frames (uint8) to feature vectors, for rgb observations of ManiSkill tasks."""
from __future__ import annotations

import torch
from tensordict.nn import TensorDictModule
from tensordict.utils import NestedKey
from torch import nn

from trl_accel import keys


def _conv_out(size: int, kernel: int, stride: int) -> int:
    return (size - kernel) // stride + 1


class PixelEncoder(nn.Module):
    """uint8 frames ``[*B, C, H, W]`` -> float features ``[*B, feature_dim]``.

    Scales pixels to [0, 1], then the Nature-DQN CNN used by ManiSkill's rgb PPO baseline:
    conv 8x8/4 (32) -> conv 4x4/2 (64) -> conv 3x3/1 (64), each with ReLU, flattened into a
    linear layer of ``feature_dim`` with ReLU. Any number of leading dims ``*B`` (e.g.
    ``[N, K]`` for a window of K frames): they are flattened for the convolutions and restored.
    Needs ``image_size >= 36``.

    >>> import torch
    >>> encoder = PixelEncoder(36, 8)
    >>> encoder(torch.randint(0, 256, (2, 4, 3, 36, 36), dtype=torch.uint8)).shape
    torch.Size([2, 4, 8])
    """

    def __init__(self, image_size: int = 64, feature_dim: int = 256, *, in_channels: int = 3):
        super().__init__()
        size = _conv_out(_conv_out(_conv_out(image_size, 8, 4), 4, 2), 3, 1)
        if size < 1:
            raise ValueError(f"PixelEncoder needs image_size >= 36, got {image_size}: raise env.image_size.")
        self.image_size = image_size
        self.in_channels = in_channels
        self.feature_dim = feature_dim
        self.cnn = nn.Sequential(
            nn.Conv2d(in_channels, 32, kernel_size=8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, kernel_size=3, stride=1), nn.ReLU(),
            nn.Flatten(),
        )
        self.fc = nn.Sequential(nn.Linear(64 * size * size, feature_dim), nn.ReLU())

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        expected = (self.in_channels, self.image_size, self.image_size)
        if pixels.dim() < 3 or tuple(pixels.shape[-3:]) != expected:
            raise ValueError(f"PixelEncoder expects frames [..., {', '.join(map(str, expected))}], "
                             f"got shape {tuple(pixels.shape)}.")
        lead = pixels.shape[:-3]
        x = pixels.reshape(-1, *expected)
        x = x.float() / 255.0  # uint8 (or float in [0, 255]) -> [0, 1]
        return self.fc(self.cnn(x)).reshape(*lead, self.feature_dim)


def make_pixel_encoder_module(*, in_key: NestedKey = keys.PIXELS, out_key: NestedKey = keys.PIXEL_FEATURES,
                              image_size: int = 64, feature_dim: int = 256) -> TensorDictModule:
    """A :class:`PixelEncoder` reading ``in_key`` uint8 [*B, 3, H, W] and writing ``out_key`` [*B, feature_dim].

    Use ``in_key="pixels_window"`` to encode a window of frames ([*B, K, 3, H, W] -> [*B, K, feature_dim]).

    >>> import torch
    >>> from tensordict import TensorDict
    >>> encoder = make_pixel_encoder_module(image_size=36, feature_dim=8)
    >>> td = TensorDict(pixels=torch.randint(0, 256, (2, 3, 36, 36), dtype=torch.uint8), batch_size=[2])
    >>> encoder(td)["pixel_features"].shape
    torch.Size([2, 8])
    """
    return TensorDictModule(PixelEncoder(image_size=image_size, feature_dim=feature_dim),
                            in_keys=[in_key], out_keys=[out_key])


__all__ = ["PixelEncoder", "make_pixel_encoder_module"]

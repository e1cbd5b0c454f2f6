"""Encoder/decoder pairs for 64x64 images with 1 or 3 channels.

Each builder returns ``(encoder, decoder)``: the encoder maps images
(B, C, 64, 64) to (B, 2 * latent_dim) = [mean | logvar]; the decoder maps
(B, latent_dim) to logits (B, C, 64, 64). Builders are registered by name, so a
new architecture is a function and a decorator.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from vaebench.registry import Registry

ArchitectureBuilder = Callable[[int, int], tuple[nn.Module, nn.Module]]

ARCHITECTURES: Registry[ArchitectureBuilder] = Registry(
    "architecture", "vaebench.architectures", builtin_modules=("vae_zoo.architectures",)
)
register_architecture = ARCHITECTURES.register

IMAGE_SIZE = 64


def _conv_stack(channels: list[int], kernel: int = 4) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        # 4x4, stride 2, padding 1 halves the side: 64 -> 32 -> 16 -> 8 -> 4 ("SAME" in TF).
        layers += [nn.Conv2d(c_in, c_out, kernel, stride=2, padding=1), nn.ReLU()]
    return layers


def _deconv_stack(channels: list[int], kernel: int = 4) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:])):
        layers.append(nn.ConvTranspose2d(c_in, c_out, kernel, stride=2, padding=1))  # doubles the side
        if i < len(channels) - 2:  # no activation on the output logits
            layers.append(nn.ReLU())
    return layers


def _dense_to_feature_map(latent_dim: int, channels: int) -> list[nn.Module]:
    """The Locatello et al. 2019 decoder's input layers, shared by ``locatello`` and ``dlib_conv``.

    Dense 256, dense 4*4*channels (ReLU after each), reshaped to (B, channels, 4, 4).
    """
    return [
        nn.Linear(latent_dim, 256), nn.ReLU(),
        nn.Linear(256, channels * 4 * 4), nn.ReLU(),
        nn.Unflatten(1, (channels, 4, 4)),
    ]  # fmt: skip


@register_architecture("burgess")
def burgess(in_channels: int, latent_dim: int) -> tuple[nn.Module, nn.Module]:
    """Burgess et al. 2018, "Understanding disentangling in beta-VAE", Appendix A.1.

    Encoder: four 4x4 stride-2 convolutions of 32 channels, two dense layers of
    256, a dense layer to 2 * latent_dim. The decoder mirrors it.
    """
    encoder = nn.Sequential(
        *_conv_stack([in_channels, 32, 32, 32, 32]),  # (B, 32, 4, 4)
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 256), nn.ReLU(),
        nn.Linear(256, 256), nn.ReLU(),
        nn.Linear(256, 2 * latent_dim),
    )  # fmt: skip
    decoder = nn.Sequential(
        nn.Linear(latent_dim, 256), nn.ReLU(),
        nn.Linear(256, 256), nn.ReLU(),
        nn.Linear(256, 32 * 4 * 4), nn.ReLU(),
        nn.Unflatten(1, (32, 4, 4)),
        *_deconv_stack([32, 32, 32, 32, in_channels]),  # (B, C, 64, 64)
    )  # fmt: skip
    return encoder, decoder


@register_architecture("locatello")
def locatello(in_channels: int, latent_dim: int) -> tuple[nn.Module, nn.Module]:
    """The convolutional architecture of Locatello et al. 2019 (disentanglement_lib), Table 1.

    Encoder: 4x4 stride-2 convolutions of 32, 32, 64, 64 channels, dense 256,
    dense 2 * latent_dim. Decoder: dense 256, dense 4*4*64, 4x4 stride-2
    transposed convolutions of 64, 32, 32, C channels.

    Deviation from the code, not the paper: disentanglement_lib's
    ``conv_encoder`` uses 2x2 kernels in the third and fourth convolution, a
    known discrepancy with the paper's Table 1 (dlib issue #23). This builder
    follows the paper (4x4 everywhere); ``dlib_conv`` is the code that trained
    the study.
    """
    encoder = nn.Sequential(
        *_conv_stack([in_channels, 32, 32, 64, 64]),  # (B, 64, 4, 4)
        nn.Flatten(),
        nn.Linear(64 * 4 * 4, 256), nn.ReLU(),
        nn.Linear(256, 2 * latent_dim),
    )  # fmt: skip
    decoder = nn.Sequential(
        *_dense_to_feature_map(latent_dim, 64),  # (B, 64, 4, 4)
        *_deconv_stack([64, 64, 32, 32, in_channels]),  # (B, C, 64, 64)
    )
    return encoder, decoder


def tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's ``padding="same"`` for a convolution over a side of ``size``: (before, after).

    The output side is ceil(size / stride); the total padding that needs,
    max((out - 1) * stride + kernel - size, 0), is split with the odd pixel
    after (bottom/right), as in TF's ``conv2d``. For ``conv2d_transpose`` with
    output side ``size * stride`` the same split is cropped from the output.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def tf_same_conv(c_in: int, c_out: int, kernel: int, stride: int, size: int) -> list[nn.Module]:
    """A Conv2d with TensorFlow's "same" padding over a (size x size) input.

    Symmetric padding in the convolution, and an explicit ZeroPad2d (more on the bottom/right) when
    the split is uneven.
    """
    before, after = tf_same_padding(size, kernel, stride)
    if before == after:
        return [nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=before)]
    return [nn.ZeroPad2d((before, after, before, after)), nn.Conv2d(c_in, c_out, kernel, stride=stride)]


def tf_same_deconv(c_in: int, c_out: int, kernel: int, stride: int, size: int) -> nn.ConvTranspose2d:
    """A ConvTranspose2d from (size x size) to (size*stride x size*stride), cropped as TF's "same"."""
    before, after = tf_same_padding(size * stride, kernel, stride)
    if before != after:  # never for the study's 4x4 stride-2 layers (crop 1 and 1)
        raise ValueError(f"TF 'same' crop ({before}, {after}) is uneven; ConvTranspose2d cannot crop it")
    return nn.ConvTranspose2d(c_in, c_out, kernel, stride=stride, padding=before)


class GaussianHeads(nn.Module):
    """Two dense heads, [means | log_var]: (B, F) -> (B, 2 * latent_dim), as dlib's ``conv_encoder``.

    The same function as one Linear(F, 2 * latent_dim); kept as two layers so that
    Glorot initialisation sees each head's own fan-out (latent_dim), as TF did.
    """

    def __init__(self, features: int, latent_dim: int):
        super().__init__()
        self.means = nn.Linear(features, latent_dim)
        self.log_var = nn.Linear(features, latent_dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Features ``(B, F)`` -> means and log-variances concatenated, ``(B, 2 * latent_dim)``."""
        return torch.cat([self.means(h), self.log_var(h)], dim=1)


@register_architecture("dlib_conv")
def dlib_conv(in_channels: int, latent_dim: int) -> tuple[nn.Module, nn.Module]:
    """The network that trained Locatello et al. 2019's study (disentanglement_lib's).

    disentanglement_lib's ``conv_encoder`` / ``deconv_decoder`` (methods/shared/architectures.py).

    It differs from ``locatello`` (the paper's Table 1) in the encoder's third and
    fourth convolutions, which are 2x2 (stride 2, TF "same": no padding), not 4x4
    (dlib issue #23). All layers use TF "same" padding, ReLU after every hidden
    layer, no activation on the means, log-variances or output logits. For 64x64x1
    inputs and 10 latents: 690,517 parameters. Choose ``init="tf"`` for the
    study's initialisation too.
    """
    sides = [IMAGE_SIZE >> i for i in range(4)]  # 64, 32, 16, 8: the side each convolution reads
    layers: list[nn.Module] = []
    for c_in, c_out, kernel, side in zip([in_channels, 32, 32, 64], [32, 32, 64, 64], [4, 4, 2, 2], sides):
        layers += [*tf_same_conv(c_in, c_out, kernel, 2, side), nn.ReLU()]
    encoder = nn.Sequential(
        *layers,  # (B, 64, 4, 4)
        nn.Flatten(),
        nn.Linear(64 * 4 * 4, 256), nn.ReLU(),
        GaussianHeads(256, latent_dim),  # (B, 2 * latent_dim)
    )  # fmt: skip
    # dlib reshapes the 1024 units to (4, 4, 64) channels-last; (64, 4, 4) here is a fixed
    # permutation of the same layer's units, so the function class and the init are the same.
    deconvs: list[nn.Module] = []
    for i, (c_in, c_out, side) in enumerate(zip([64, 64, 32, 32], [64, 32, 32, in_channels], [4, 8, 16, 32])):
        deconvs.append(tf_same_deconv(c_in, c_out, 4, 2, side))
        if i < 3:  # no activation on the output logits
            deconvs.append(nn.ReLU())
    decoder = nn.Sequential(
        *_dense_to_feature_map(latent_dim, 64),  # (B, 64, 4, 4)
        *deconvs,  # (B, C, 64, 64)
    )
    return encoder, decoder


@register_architecture("mlp")
def mlp(in_channels: int, latent_dim: int) -> tuple[nn.Module, nn.Module]:
    """Chen et al. 2018 (beta-TCVAE)'s dSprites MLP encoder and decoder.

    From their Appendix: 4096-1200-1200 encoder, 1200-1200-1200 tanh decoder (their ``MLPEncoder`` /
    ``MLPDecoder``).
    """
    pixels = in_channels * IMAGE_SIZE * IMAGE_SIZE
    encoder = nn.Sequential(
        nn.Flatten(),
        nn.Linear(pixels, 1200), nn.ReLU(),
        nn.Linear(1200, 1200), nn.ReLU(),
        nn.Linear(1200, 2 * latent_dim),
    )  # fmt: skip
    decoder = nn.Sequential(
        nn.Linear(latent_dim, 1200), nn.Tanh(),
        nn.Linear(1200, 1200), nn.Tanh(),
        nn.Linear(1200, 1200), nn.Tanh(),
        nn.Linear(1200, pixels),
        nn.Unflatten(1, (in_channels, IMAGE_SIZE, IMAGE_SIZE)),
    )  # fmt: skip
    return encoder, decoder

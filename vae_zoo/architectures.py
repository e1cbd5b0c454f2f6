"""Encoder/decoder pairs for 64x64 images with 1 or 3 channels.

Each builder returns ``(encoder, decoder)``: the encoder maps images
(B, C, 64, 64) to (B, 2 * latent_dim) = [mean | logvar]; the decoder maps
(B, latent_dim) to logits (B, C, 64, 64). Builders are registered by name, so a
new architecture is a function and a decorator.
"""

from __future__ import annotations

from collections.abc import Callable

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
    known discrepancy with the paper's Table 1. We follow the paper (4x4
    everywhere), so weights are not interchangeable with dlib checkpoints.
    """
    encoder = nn.Sequential(
        *_conv_stack([in_channels, 32, 32, 64, 64]),  # (B, 64, 4, 4)
        nn.Flatten(),
        nn.Linear(64 * 4 * 4, 256), nn.ReLU(),
        nn.Linear(256, 2 * latent_dim),
    )  # fmt: skip
    decoder = nn.Sequential(
        nn.Linear(latent_dim, 256), nn.ReLU(),
        nn.Linear(256, 64 * 4 * 4), nn.ReLU(),
        nn.Unflatten(1, (64, 4, 4)),
        *_deconv_stack([64, 64, 32, 32, in_channels]),  # (B, C, 64, 64)
    )  # fmt: skip
    return encoder, decoder


@register_architecture("mlp")
def mlp(in_channels: int, latent_dim: int) -> tuple[nn.Module, nn.Module]:
    """Chen et al. 2018 (beta-TCVAE), Appendix, dSprites MLP: 4096-1200-1200 encoder,
    1200-1200-1200 tanh decoder (their ``MLPEncoder`` / ``MLPDecoder``)."""
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

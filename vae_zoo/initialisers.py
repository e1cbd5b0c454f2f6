"""Weight initialisers, registered by name and chosen by ``VAE.Config.init``.

An initialiser takes a module and re-initialises its layers in place, drawing
from torch's global generator (as PyTorch's own layer constructors do, so a
seeded model is reproducible either way).

* ``torch``: leave PyTorch's defaults (Kaiming-uniform with a = sqrt(5) for
  weights, uniform(+-1/sqrt(fan_in)) for biases). Draws nothing.
* ``tf``: what ``tf.layers`` did in disentanglement_lib: Glorot-uniform kernels
  (Glorot & Bengio 2010, eq. 16: U(-l, l), l = sqrt(6 / (fan_in + fan_out)))
  and zero biases, with TensorFlow's fans (``_compute_fans``: a conv kernel
  (kh, kw, in, out) has fan_in = in*kh*kw, fan_out = out*kh*kw; a transposed
  conv kernel (kh, kw, out, in) the reverse; a dense kernel (in, out)).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from vaebench.registry import Registry

Initialiser = Callable[[nn.Module], None]

INITIALISERS: Registry[Initialiser] = Registry(
    "initialiser", "vaebench.initialisers", builtin_modules=("vae_zoo.initialisers",)
)
register_initialiser = INITIALISERS.register

__all__ = ["INITIALISERS", "register_initialiser", "tf_fans", "glorot_limit"]


def tf_fans(layer: nn.Module) -> tuple[int, int]:
    """(fan_in, fan_out) of a Linear, Conv2d or ConvTranspose2d as TensorFlow computes them."""
    w = layer.weight
    if isinstance(layer, nn.Linear):  # torch (out, in); TF (in, out)
        return w.shape[1], w.shape[0]
    receptive = math.prod(w.shape[2:])
    if isinstance(layer, nn.ConvTranspose2d):  # torch (in, out, kh, kw); TF (kh, kw, out, in)
        return w.shape[1] * receptive, w.shape[0] * receptive
    if isinstance(layer, nn.Conv2d):  # torch (out, in, kh, kw); TF (kh, kw, in, out)
        return w.shape[1] * receptive, w.shape[0] * receptive
    raise TypeError(f"no TensorFlow fans for {type(layer).__name__}")


def glorot_limit(layer: nn.Module) -> float:
    """Bound l of Glorot-uniform U(-l, l) for ``layer``: sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = tf_fans(layer)
    return math.sqrt(6.0 / (fan_in + fan_out))


@register_initialiser("torch")
def torch_default(module: nn.Module) -> None:
    """PyTorch's own initialisation, as the layers were constructed: nothing to do."""


@register_initialiser("tf")
@torch.no_grad()
def tf_default(module: nn.Module) -> None:
    """TensorFlow 1's ``tf.layers`` defaults: Glorot-uniform kernels, zero biases."""
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            limit = glorot_limit(layer)
            layer.weight.uniform_(-limit, limit)
            if layer.bias is not None:
                layer.bias.zero_()

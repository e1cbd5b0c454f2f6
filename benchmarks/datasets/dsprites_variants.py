"""Color-dSprites and Noisy-dSprites: dSprites with randomness drawn per observation.

As disentanglement_lib defines them (``data/ground_truth/dsprites.py``,
``ColorDSprites`` and ``NoisyDSprites``; Locatello et al. 2019, "Challenging
Common Assumptions in the Unsupervised Learning of Disentangled
Representations", section 5):

* ``color_dsprites``: the sprite multiplied by one RGB colour per observation,
  each channel uniform in [0.5, 1]; the background stays black.
* ``noisy_dsprites``: a background uniform in [0, 1] per pixel and channel,
  the sprite added to it and clipped at 1 (so the sprite is white).

Both have 3 channels and dSprites' five factors (shape, scale, orientation,
posX, posY): dlib's ``[1, 2, 3, 4, 5]`` of the official six, the constant
colour factor dropped. The colour and the noise are not factors and not a
function of them: they are drawn anew for every observation, so the same grid
point gives a different image every time (``stochastic_observations``).

The images stored are dSprites' own 1-channel sprites, in dSprites' cache (the
same files, the same official or procedural source): the colour or noise is
applied when observations are drawn, by one torch function per transform
used by both paths:

* training: ``observation_noise(batch, generator)`` draws from the run's
  ``torch.Generator`` and turns the ``(B, 1, 64, 64)`` sprites into ``(B, 3, 64, 64)``;
* evaluation: ``sample_observations_from_factors(factors, rng)`` draws from the
  metrics' numpy generator exactly what dlib draws (with a ``RandomState``, the
  same numbers in the same order), then calls the same function.

Arithmetic is float32 (dlib's is float64): observations agree with dlib's to
about 1e-7.
"""

from __future__ import annotations

import numpy as np
import torch

from .cache import FlatCache
from .dataset import to_float
from .dsprites import DSprites
from .registry import register_dataset

__all__ = ["ColorDSprites", "NoisyDSprites", "DSpritesVariant", "colour_sprites", "noisy_sprites"]


def colour_sprites(sprites: torch.Tensor, colours: torch.Tensor) -> torch.Tensor:
    """Sprites ``(n, 1, H, W)`` in [0, 1] times one colour ``(n, 3)`` each -> ``(n, 3, H, W)``.

    dlib's ``ColorDSprites``: ``observations * color``, the 1-channel sprite repeated over RGB.
    """
    return sprites * colours[:, :, None, None].to(sprites)


def noisy_sprites(sprites: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Sprites ``(n, 1, H, W)`` in [0, 1] on noise ``(n, 3, H, W)``: ``min(sprite + noise, 1)``, 3 channels.

    dlib's ``NoisyDSprites``: ``np.minimum(observations + color, 1.)``.
    """
    return torch.clamp(sprites + noise.to(sprites), max=1.0)


def numpy_uniform(
    rng: np.random.Generator | np.random.RandomState, low: float, high: float, size
) -> np.ndarray:
    """``rng.uniform(low, high, size)`` (the same call on both numpy generator types), float64."""
    if not isinstance(rng, np.random.Generator | np.random.RandomState):
        raise TypeError(f"rng must be a numpy Generator or RandomState; got {type(rng).__name__}")
    return rng.uniform(low, high, size=size)


def torch_uniform(
    generator: torch.Generator, low: float, high: float, size: tuple[int, ...], like: torch.Tensor
) -> torch.Tensor:
    """Uniform ``[low, high)`` drawn on ``generator``'s device, returned on ``like``'s device and dtype."""
    draws = torch.rand(size, generator=generator, device=generator.device, dtype=torch.float32)
    return (low + (high - low) * draws).to(device=like.device, dtype=like.dtype)


class DSpritesVariant(DSprites):
    """dSprites' factors and stored sprites, observed through a per-observation transform.

    Subclasses set ``name`` and implement ``observe(sprites, draws)`` plus the two
    ways of drawing its randomness: ``draw_torch`` (training) and ``draw_numpy``
    (evaluation, in dlib's order). The caches are dSprites': a grid point's stored
    image is its 1-channel sprite (``images``, ``training_images``); the 3-channel
    observation a model sees comes from ``observation_noise`` or
    ``sample_observations_from_factors``.
    """

    observation_shape = (3, 64, 64)  # what the model sees; the cache holds dSprites' (1, 64, 64)
    stochastic_observations = True

    def sprites(self) -> DSprites:
        """The plain dSprites whose caches and files these images are (same root, source and grid)."""
        twin = DSprites(source=self.requested_source, root=self.root, progress=self.progress)
        twin.factor_sizes = tuple(self.factor_sizes)  # a test's (or a worker's) grid
        return twin

    def official_cache(self, official) -> FlatCache:
        """The plain dSprites' cache built from its official file (the sprites these images colour)."""
        return self.sprites().official_cache(official)

    def procedural_cache(self) -> FlatCache:
        """The plain dSprites' cache built procedurally."""
        return self.sprites().procedural_cache()

    # -- the transform ------------------------------------------------------------
    def observe(self, sprites: torch.Tensor, draws) -> torch.Tensor:
        """Observations ``(n, 3, H, W)`` of float sprites ``(n, 1, H, W)`` in [0, 1] and their draws."""
        raise NotImplementedError

    def draw_torch(self, n: int, generator: torch.Generator, like: torch.Tensor):
        """The random draws for ``n`` observations from a torch ``generator``, on ``like``'s device."""
        raise NotImplementedError

    def draw_numpy(self, n: int, rng: np.random.Generator | np.random.RandomState):
        """The same draws as ``draw_torch`` from a numpy generator, in dlib's order of draws."""
        raise NotImplementedError

    def observation_noise(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Training sprites ``(B, 1, 64, 64)`` -> observations ``(B, 3, 64, 64)`` drawn from ``generator``."""
        if batch.shape[1] != 1:
            raise ValueError(
                f"{self.name}: expected dSprites' 1-channel sprites; got a batch shaped {tuple(batch.shape)}"
            )
        return self.observe(batch, self.draw_torch(len(batch), generator, batch))

    def sample_observations_from_factors(
        self, factors: np.ndarray, rng: np.random.Generator | np.random.RandomState | None = None
    ) -> np.ndarray:
        """float32 observations ``(n, 3, 64, 64)`` in [0, 1], drawn from ``rng`` as dlib draws them."""
        if rng is None:
            raise ValueError(
                f"{self.name}: observations are random per draw; pass the numpy rng to draw them from"
            )
        sprites = to_float(torch.from_numpy(self.images(factors)))  # (n, 1, 64, 64)
        return self.observe(sprites, self.draw_numpy(len(sprites), rng)).numpy()


@register_dataset("color_dsprites")
class ColorDSprites(DSpritesVariant):
    """Color-dSprites: each sprite in one RGB colour, every channel uniform in [0.5, 1]; 3x64x64.

    dlib draws ``uniform(0.5, 1, [n, 1, 1, 3])`` per batch of observations.
    """

    name = "color_dsprites"

    def observe(self, sprites: torch.Tensor, colours: torch.Tensor) -> torch.Tensor:
        """Sprites ``(n, 1, H, W)`` coloured by ``colours`` ``(n, 3)``."""
        return colour_sprites(sprites, colours)

    def draw_torch(self, n: int, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
        """One colour per observation, uniform in [0.5, 1] per channel: ``(n, 3)``."""
        return torch_uniform(generator, 0.5, 1.0, (n, 3), like)  # (n, 3)

    def draw_numpy(self, n: int, rng) -> torch.Tensor:
        """One colour per observation from a numpy generator, as dlib draws it: ``(n, 3)``."""
        return torch.from_numpy(numpy_uniform(rng, 0.5, 1.0, (n, 3))).float()  # (n, 3)


@register_dataset("noisy_dsprites")
class NoisyDSprites(DSpritesVariant):
    """Noisy-dSprites: a white sprite on a background uniform in [0, 1] per pixel and channel; 3x64x64.

    dlib draws ``uniform(0, 1, [n, 64, 64, 3])`` (channels last) per batch of observations.
    """

    name = "noisy_dsprites"

    def observe(self, sprites: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Sprites ``(n, 1, H, W)`` in white on the background ``noise`` ``(n, 3, H, W)``."""
        return noisy_sprites(sprites, noise)

    def draw_torch(self, n: int, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
        """A background uniform in [0, 1] per pixel and channel: ``(n, 3, H, W)``."""
        return torch_uniform(generator, 0.0, 1.0, (n, *self.observation_shape), like)  # (n, 3, 64, 64)

    def draw_numpy(self, n: int, rng) -> torch.Tensor:
        """The background from a numpy generator in dlib's (n, H, W, C) order, as ``(n, 3, H, W)``."""
        _, h, w = self.observation_shape
        noise = numpy_uniform(rng, 0.0, 1.0, (n, h, w, 3))  # dlib's (n, H, W, C) order of draws
        return torch.from_numpy(noise.transpose(0, 3, 1, 2).astype(np.float32))  # (n, 3, H, W)

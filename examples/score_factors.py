"""Score a "perfect" representation (dSprites' ground-truth factors) and a random projection.

    python examples/score_factors.py            # the fast settings (about a minute on 2 CPU cores)
    python examples/score_factors.py --study    # disentanglement_lib's sample sizes (a few minutes)

The perfect codes are a codes array: one row per observation in the dataset's canonical (factor-grid)
order, which is what `dataset.grid.all_factors()` lists. The random projection is a Python function
on image batches, as your own encoder would be. Neither gives a posterior, so the metrics that need
one (Chen et al.'s MIG, the sampled representation) are left out, with a note saying so.
"""

import argparse

import numpy as np

import vaebench
from benchmarks.datasets import load_dataset

METRICS = ["mig", "dci", "factor_vae", "beta_vae", "sap", "modularity_explicitness", "irs"]


def random_projection(images: np.ndarray) -> np.ndarray:
    """(n, 1, 64, 64) float32 in [0, 1] -> (n, 10) codes: a fixed random linear map of the pixels."""
    weights = np.random.RandomState(0).standard_normal((64 * 64, 10)).astype(np.float32) / 64
    return images.reshape(len(images), -1) @ weights


def main() -> None:
    """Score the factors and a random projection of them; print both."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", action="store_true", help="disentanglement_lib's sample sizes")
    args = parser.parse_args()
    settings = "study" if args.study else "fast"

    dataset = load_dataset("dsprites")
    factors = dataset.grid.all_factors().astype(np.float32)  # (737280, 5): shape, scale, orientation, x, y
    scores = {
        label: vaebench.score(encoder, dataset="dsprites", metrics=METRICS, settings=settings, name=label)
        for label, encoder in (("factors", factors), ("random projection", random_projection))
    }
    perfect, random = scores["factors"], scores["random projection"]
    print(f"dSprites, {settings} settings, evaluation seed 0")
    print(f"{'metric':<32}{'factors':>12}{'random projection':>20}")
    for key in perfect:
        print(f"{key:<32}{perfect[key]:>12.4f}{random.get(key, float('nan')):>20.4f}")


if __name__ == "__main__":
    main()

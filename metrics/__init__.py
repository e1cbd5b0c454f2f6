"""metrics: disentanglement scores on arrays, with disentanglement_lib's definitions.

Public functions take codes ``(n_samples, n_codes)`` float and factors
``(n_samples, n_factors)`` int and return a flat ``dict[str, float]``:

>>> import numpy as np, metrics
>>> rng = np.random.default_rng(0)
>>> factors = rng.integers(0, 10, size=(2000, 3))
>>> codes = factors + 0.01 * rng.standard_normal((2000, 3))
>>> round(metrics.mig(codes, factors)["mig"], 2)
0.99
>>> metrics.list_metrics("dci*")
['dci', 'dci_fast']

Every metric is registered (``METRICS``, ``register_metric``, ``get_metric``,
``list_metrics``) with its inputs kind, the direction of each output key, and
the study's and a fast setting; ``evaluate_metric`` samples what a metric
needs from a :class:`GroundTruthSampler`. Intervention metrics (BetaVAE,
FactorVAE) take the sampler and an ``encode`` function themselves, with the
sampling (``sample_*``) apart from the scoring (``*_from_*``).

Keys name their estimator: ``mig`` is dlib's histogram MIG, ``mig_chen`` Chen
et al.'s original (posterior-based, whole grid, shape excluded on dSprites).

Agreement with disentanglement_lib (commit 86a644d4, scikit-learn 1.9, see
tests/metrics and tests/data/dlib/README.md): downstream task, fairness and UDR
bit for bit on tests/data/dlib/extra **under the same BLAS kernel** as dlib (its
outputs are stored per OpenBLAS kernel: SkylakeX, Haswell, Sandybridge, Nehalem;
across kernels dlib's own unconverged logistic regressions move a per-factor
accuracy by up to 0.1 at 10 training points, a mean test accuracy by up to
0.003, the trees not at all); MIG, SAP (both modes),
modularity, explicitness, the unsupervised scores and IRS equal dlib's to
1e-9 on its fixtures (bit for bit where checked); DCI to dlib's own run-to-run
spread (its trees draw ties from numpy's global RNG, ours from ``rng``); with
a ``np.random.RandomState`` and a deterministic encoder the samplers draw
exactly dlib's points, so even the sampled protocol reproduces dlib's scores.

Deviations from disentanglement_lib, all deliberate (each with a MetricWarning
where a number changes):

* Key names: dlib's ``discrete_mig`` -> ``mig``; ``SAP_score`` -> ``sap``;
  ``disentanglement``/``completeness``/``informativeness_*`` -> ``dci_*``;
  ``modularity_score`` -> ``modularity``; ``explicitness_score_*`` ->
  ``explicitness_*``; ``IRS`` -> ``irs``; BetaVAE and FactorVAE keys get a
  ``beta_vae_``/``factor_vae_`` prefix.
* Bad input raises a ValueError naming the argument (shape, dtype, NaN/inf,
  lengths, non-integer factors, too few points) where dlib fails somewhere
  inside or returns garbage. Minimum sizes where dlib's formulas divide by
  zero or index out of range: MIG, SAP, the unsupervised scores and DCI need
  >= 2 codes; DCI and modularity/explicitness >= 2 factors.
* MIG with a factor that takes one value: dlib divides by a zero entropy (NaN,
  or +inf with old scikit-learn) -> NaN.
* SAP with a factor that takes one value: dlib raises (discrete) or returns NaN
  (continuous) -> NaN.
* DCI with a factor that takes one value: dlib raises -> NaN for all four keys.
  The trees' tie-breaking is seeded from ``rng`` instead of the global RNG.
* Modularity/explicitness: a constant code makes dlib divide by a zero standard
  deviation and crash, losing modularity as well; we z-score the constant code
  to 0 (scikit-learn's StandardScaler convention) and return both. A factor
  with one training value (dlib raises) -> explicitness NaN; test values other
  than the training classes (dlib raises) -> ``explicitness_test`` NaN.
* Unsupervised scores: dlib returns a complex Wasserstein correlation when the
  covariance is singular (sqrtm round-off) -> we return its real part, which
  equals dlib's real part. A constant code makes dlib's total correlation NaN
  (log 0) -> we return the total correlation of the non-constant codes (a
  constant is independent of everything). A singular covariance with a
  positive diagonal keeps dlib's +inf total correlation. All codes constant:
  the normalised Wasserstein score is NaN (0/0), as in dlib.
* IRS: dlib's ``num_active_dims`` sums the active codes' values (not a count);
  it is left out.
* FactorVAE: dlib's ``num_active_dims`` is ``len(mask)``, the total number of
  codes; ``factor_vae_active_dims`` is the number of codes kept by the
  prune threshold.
* BetaVAE: a training set whose labels hold a single factor -> NaN (dlib's
  classifier raises).
* Sampling: identical draws to dlib for a RandomState; ``encode_batch_size``
  may group several points' observations into one ``encode`` call (same codes
  for a deterministic encoder; dlib calls it once per batch). ``mig_chen``'s
  ``n_samples`` subsets are drawn without replacement like Chen et al.'s
  ``randperm``, from our ``rng`` rather than torch's global generator.
* Classifier convergence warnings (LinearSVC in SAP, LogisticRegression in
  explicitness and BetaVAE, all at scikit-learn's default iterations as in
  dlib) are silenced: dlib's numbers are those non-converged fits.
* ``dci_fast`` (HistGradientBoostingClassifier, gain importances; keys
  ``dci_fast_*``) is an extra metric under its own name; it does not reproduce
  dlib's DCI (within 0.08 of it on dlib's fixtures).
* Downstream task, fairness, UDR (``metrics.downstream_task``, ``metrics.fairness``,
  ``metrics.udr``; equal to dlib's to the bit on tests/data/dlib/extra): keys
  ``downstream_<lr|gbt>_<n>_<mean|min>_<train|test>_accuracy`` for dlib's
  ``<n>:<mean|min>_<train|test>_accuracy`` (two registered metrics,
  ``downstream_task_lr`` and ``downstream_task_gbt``; the setting ``train_sizes`` is
  dlib's ``num_train`` list), ``fairness_<mean|max>_<a>_<b>`` for dlib's
  ``<mean|max>_fairness:<a>:<b>`` (``n_test_per_class`` is dlib's
  ``num_test_points_per_class``), ``udr_lasso`` / ``udr_spearman`` per model. dlib's
  per-factor keys (``..._test_accuracy_factor_<i>``, ``fairness_mean_pred<i>_sens<j>``, ...)
  come with ``per_factor=True``; the registered metrics leave them out (their number
  depends on the data set). The downstream train accuracies are declared neither higher
  nor lower is better (trees fit noise perfectly). dlib's trees draw tie-breaks from
  numpy's global RNG: ``classifier_rng`` is that stream (``RandomState(seed)``
  reproduces a run after ``np.random.seed(seed)``), by default seeded from ``rng`` after
  the points are drawn. A factor with one training value (dlib's classifiers raise) ->
  NaN for it. UDR scores a group of models (inputs kind ``model_group``, computed by
  ``vaebench udr``; ``evaluate_metric`` refuses it); a model with no latent above
  ``kl_filter_threshold`` (dlib raises for the whole group) gets NaN and the others
  the median of their remaining pairs. dlib zeroes latents with KL <= 0.01 whatever
  ``kl_filter_threshold`` is; so do we.
* ``dci`` grows scikit-learn's ``GradientBoostingClassifier()`` trees with our
  own presorted, numba-compiled builder (``metrics.exact_gbt``): the same
  splits, leaves, importances and predictions as scikit-learn for the same
  seed, to the bit on codes without repeated values; tied values are summed in
  sample order instead of scikit-learn's introsort order (a last-bit
  difference; ``fit_gradient_boosting(tie_order="sklearn")`` reproduces its
  splits too). dlib breaks exact ties at random, so either is dlib's DCI.
  ``dci(..., implementation="sklearn")`` fits scikit-learn's own classifier.
"""

from metrics._validation import MetricWarning, check_arrays
from metrics.chen_mig import gaussian_mixture_entropy, mig_chen
from metrics.dci_score import dci, dci_fast, disentanglement_completeness
from metrics.downstream_task import downstream_task, downstream_task_gbt, downstream_task_lr
from metrics.exact_gbt import fit_gradient_boosting
from metrics.fairness import fairness, fairness_scores_from_matrices, inter_group_fairness
from metrics.interventions import (
    beta_vae_score,
    beta_vae_score_from_features,
    factor_vae_score,
    factor_vae_score_from_variances,
    sample_beta_vae_features,
    sample_factor_vae_global_variances,
    sample_factor_vae_local_variances,
    sample_interventions,
)
from metrics.irs_score import irs, irs_matrix
from metrics.modularity import explicitness_per_factor, modularity_explicitness, modularity_from_mutual_info
from metrics.mutual_info_gap import mig, mig_from_mutual_info
from metrics.registry import (
    INPUT_KINDS,
    METRICS,
    FitCost,
    MetricSpec,
    Presentation,
    evaluate_metric,
    get_metric,
    list_metrics,
    register_metric,
)
from metrics.sampling import (
    Encoder,
    GroundTruthSampler,
    RandomGenerator,
    check_rng,
    factor_grid,
    rng_integers,
    rng_normal,
    rng_seed,
    sample_codes_and_factors,
)
from metrics.sap_score import sap, sap_from_score_matrix, sap_score_matrix
from metrics.udr import UDRResult, relative_strength_disentanglement, udr, udr_lasso, udr_spearman
from metrics.unsupervised_scores import (
    gaussian_total_correlation,
    gaussian_wasserstein_correlation,
    unsupervised,
)
from metrics.utils import (
    discrete_entropy,
    discrete_mutual_info,
    histogram_discretize,
    mutual_info,
    split_train_test,
)

__all__ = [
    # registry
    "METRICS",
    "INPUT_KINDS",
    "MetricSpec",
    "Presentation",
    "FitCost",
    "register_metric",
    "get_metric",
    "list_metrics",
    "evaluate_metric",
    # metrics
    "mig",
    "mig_chen",
    "sap",
    "dci",
    "dci_fast",
    "fit_gradient_boosting",
    "modularity_explicitness",
    "unsupervised",
    "irs",
    "beta_vae_score",
    "factor_vae_score",
    "downstream_task",
    "downstream_task_lr",
    "downstream_task_gbt",
    "fairness",
    "udr",
    "udr_lasso",
    "udr_spearman",
    "UDRResult",
    # sampling
    "GroundTruthSampler",
    "Encoder",
    "RandomGenerator",
    "check_rng",
    "rng_integers",
    "rng_normal",
    "rng_seed",
    "sample_codes_and_factors",
    "sample_beta_vae_features",
    "sample_factor_vae_global_variances",
    "sample_factor_vae_local_variances",
    "sample_interventions",
    "factor_grid",
    # scoring pieces
    "beta_vae_score_from_features",
    "factor_vae_score_from_variances",
    "disentanglement_completeness",
    "mig_from_mutual_info",
    "modularity_from_mutual_info",
    "explicitness_per_factor",
    "sap_score_matrix",
    "sap_from_score_matrix",
    "irs_matrix",
    "gaussian_total_correlation",
    "gaussian_wasserstein_correlation",
    "gaussian_mixture_entropy",
    "inter_group_fairness",
    "fairness_scores_from_matrices",
    "relative_strength_disentanglement",
    # helpers
    "histogram_discretize",
    "mutual_info",
    "discrete_mutual_info",
    "discrete_entropy",
    "split_train_test",
    "check_arrays",
    "MetricWarning",
]

"""scikit-learn's ``GradientBoostingClassifier()``, the one dlib's DCI fits, re-implemented for speed.

dlib's DCI fits one ``GradientBoostingClassifier()`` per factor with every
default: log loss, 100 stages, learning rate 0.1, one depth-3 regression tree
per class and stage (``criterion="squared_error"`` in scikit-learn >= 1.4),
exact best splits over every feature. At the study's size (10,000 points, 10
codes, dSprites' 3 + 6 + 40 + 32 + 32 classes) that is 11,300 trees, and
scikit-learn re-sorts every feature at every node of every one of them: about
110-150 s per model, most of the metric suite's time.

This module grows the same trees, split for split, with the same leaf values,
and reads off the same impurity importances and predictions, but

- sorts each feature once per fit (``presorted``) and keeps every node's
  samples in sorted order per feature by stable partitioning, instead of
  sorting at every node (the classic presorted CART of Breiman et al. 1984);
- compiles the tree growing with numba (``nogil``) and grows the K trees of a
  stage, which are independent given the stage's gradients, on ``n_jobs``
  threads, and the trees of several fits side by side on the same threads
  (``fit_gradient_boostings``: a metric's fits, one per factor and train size).

What is reproduced (scikit-learn 1.9, ``sklearn/ensemble/_gb.py`` and
``sklearn/tree/_splitter.pyx``, ``_criterion.pyx``, ``_tree.pyx``):

- inputs cast to float32; classes sorted (``np.unique``);
- initial raw predictions from the class priors (clipped to [eps, 1 - eps]):
  ``log(p_k / gmean(p))`` for K > 2 classes, ``logit(p_1)`` for two;
- per stage the negative gradient ``y_k - softmax(raw)_k`` (binary:
  ``y - expit(raw)``), fitted by a regression tree per class;
- split search: candidate positions between consecutive sorted values that
  differ by more than ``FEATURE_THRESHOLD = 1e-7`` (float32 arithmetic), the
  proxy ``S_L^2 / n_L + S_R^2 / n_R``, the first strictly larger proxy wins,
  the threshold is the midpoint ``v_prev / 2 + v / 2`` in float64;
- a node is a leaf at depth 3, with fewer than 2 samples, with impurity
  ``<= eps``, with no valid split, or with an improvement ``< -eps``;
- leaf values by one Newton step (Friedman 2001, Algorithm 1 step 5):
  ``(K - 1) / K * mean(g) / mean(p (1 - p))`` (binary: without the factor),
  0 where the denominator is below 1e-150;
- ``feature_importances_``: per tree the weighted impurity decreases over the
  root's sample count, averaged over the trees with more than one node, then
  normalised to sum 1;
- prediction: the arg-max of the raw scores (binary: ``raw >= 0``);
- the rounding wherever it can decide between splits that tie exactly: the
  order of the criterion's sums (scikit-learn's sample array, its
  partition_samples_final swaps, its forward or backward Criterion.update),
  numpy's pairwise sums in the leaf values, the losses' gradient formulas;
- the order in which each node visits the features (its ``rand_r`` xorshift
  seeded per tree from ``random_state``, known-constant features skipped),
  which decides between features whose best splits tie exactly: common in
  small nodes, where several codes separate the same few samples;
- with ``tie_order="sklearn"``, the order in which tied samples are summed,
  wherever it can decide a split. Samples with the same row and label
  ("twins": a point drawn twice) have equal residuals at every stage, so their
  order changes no sum; a value shared by non-twins (two images that encode
  alike but are labelled apart, or codes that collide) can. Samples with the
  same row share their raw scores, so in the tree of class k even two
  labelled apart have equal residuals ``onehot_k - p_k`` unless one of them
  is labelled k: a tie between them matters to the trees of their own two
  classes only (dSprites' symmetric shapes give such pairs: an ellipse
  turned half a circle is the same image). Each tree is grown
  first from the presorted order and kept if every decision is certain: made
  between sums whose order is scikit-learn's, or by a margin wider than any
  order of the sums can move (a rounding-error bound, ``_order_error``);
  otherwise it is grown again with scikit-learn's introsort
  (``sklearn/utils/_sorting.pyx``) replayed on the node's samples wherever
  non-twins tie. Splits, leaves and predictions are scikit-learn's to the bit;
  the importances (impurities summed in the presorted order in a kept tree) to
  the last bits. The default, ``"stable"``, sums tied values in sample order
  always, which changes the criterion in its last bits (DCI's importances).

tests/metrics/test_exact_gbt.py checks importances to 1e-12 and identical
predictions against scikit-learn on continuous, tied, duplicated and constant
codes, binary and multiclass.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.special
import scipy.stats

try:  # numba compiles the tree growing; without it the same algorithm runs in scikit-learn
    import numba
except ImportError:  # pragma: no cover - exercised only where numba is missing (the GPU image)
    numba = None

__all__ = ["HAVE_NUMBA", "fit_gradient_boosting", "fit_gradient_boostings"]

HAVE_NUMBA = numba is not None

MAX_DEPTH = 3
MAX_NODES = 2 ** (MAX_DEPTH + 1) - 1  # a depth-3 binary tree: 1 + 2 + 4 + 8
_FEATURE_THRESHOLD = np.float32(1e-7)
_EPSILON = np.finfo(np.float64).eps
_UNIT_ROUNDOFF = 2.0**-53
#: A split's proxy ``fl(fl(S_L^2) / n_L + fl(S_R^2) / n_R)`` (non-negative terms) is at most
#: ``fl(fl(S_L^2) * fl(1 / n_L) + fl(S_R^2) * fl(1 / n_R))`` times (1 + 6 u): each quotient and its
#: product with the rounded reciprocal are within 3 u of the exact quotient, the sums within u.
#: A scan computes that product first, and the divisions only where the product times this slack
#: could change a decision (beat the best proxy so far, or a margin's): the same trees, without
#: most divisions.
_BOUND_SLACK = 1.0 + 1e-12


def _jit(function):
    return numba.njit(cache=True, nogil=True)(function) if HAVE_NUMBA else function


@_jit
def _our_rand_r(state):
    """scikit-learn's ``our_rand_r`` (sklearn/utils/_random.pxd): xorshift32, returns (state, draw)."""
    if state == 0:
        state = 1  # DEFAULT_SEED
    state ^= (state << 13) & 0xFFFFFFFF
    state ^= state >> 17
    state ^= (state << 5) & 0xFFFFFFFF
    return state, state % 2147483648  # RAND_R_MAX + 1


@_jit
def _swap(values, indices, i, j):
    values[i], values[j] = values[j], values[i]
    indices[i], indices[j] = indices[j], indices[i]


@_jit
def _median3(values, start, n):
    a, b, c = values[start], values[start + n // 2], values[start + n - 1]
    if a < b:
        if b < c:
            return b
        if a < c:
            return c
        return a
    if b < c:
        if a < c:
            return a
        return c
    return b


@_jit
def _sift_down(values, indices, start, root, end):
    while True:
        child = root * 2 + 1
        largest = root
        if child < end and values[start + largest] < values[start + child]:
            largest = child
        if child + 1 < end and values[start + largest] < values[start + child + 1]:
            largest = child + 1
        if largest == root:
            return
        _swap(values, indices, start + root, start + largest)
        root = largest


@_jit
def _introsort_3way(values, indices, start, n, max_depth, sorted_indices, sorted_values, tie_prefix):
    """scikit-learn's ``simultaneous_sort(..., use_three_way_partition=True)`` of values[start:start + n].

    (sklearn/utils/_sorting.pyx: introsort, median-of-3 pivot, 3-way partition, heapsort past
    ``max_depth``, insertion sort below 16.) Its order among equal values decides the order of
    the criterion's sums, so it is reproduced step by step, except where it cannot matter:
    every sub-array the 3-way partitions leave holds the sub-array's share of the sorted
    order (positions [start, start + n) of ``sorted_indices``, values ``sorted_values``), so
    one without two equal values (``tie_prefix``: count of equal neighbours in sorted order up
    to each position) can only end sorted, and is written out at once.
    """
    if n > 1 and tie_prefix[start + n - 1] - tie_prefix[start] == 0:
        for q in range(start, start + n):
            indices[q] = sorted_indices[q]
            values[q] = sorted_values[q]
        return
    while n > 15:
        if max_depth <= 0:  # heapsort
            first = (n - 2) // 2
            while True:
                _sift_down(values, indices, start, first, n)
                if first == 0:
                    break
                first -= 1
            last = n - 1
            while last > 0:
                _swap(values, indices, start, start + last)
                _sift_down(values, indices, start, 0, last)
                last -= 1
            return
        max_depth -= 1
        pivot = _median3(values, start, n)
        i = 0
        less = 0
        greater = n
        while i < greater:
            if values[start + i] < pivot:
                _swap(values, indices, start + i, start + less)
                i += 1
                less += 1
            elif values[start + i] > pivot:
                greater -= 1
                _swap(values, indices, start + i, start + greater)
            else:
                i += 1
        _introsort_3way(values, indices, start, less, max_depth, sorted_indices, sorted_values, tie_prefix)
        start += greater
        n -= greater
        if n > 1 and tie_prefix[start + n - 1] - tie_prefix[start] == 0:
            for q in range(start, start + n):
                indices[q] = sorted_indices[q]
                values[q] = sorted_values[q]
            return
    for i in range(1, n):  # insertion sort
        value = values[start + i]
        index = indices[start + i]
        j = i
        while j > 0 and values[start + j - 1] > value:
            values[start + j] = values[start + j - 1]
            indices[start + j] = indices[start + j - 1]
            j -= 1
        values[start + j] = value
        indices[start + j] = index


@_jit
def _order_error(n, abs_total):
    """A bound, with room to spare, on how far the order of a node's sums can move a proxy.

    Residuals r in [-1, 1], n of them, sum of |r| = A. A recursive sum of n terms is within
    gamma_n * A of the exact one (gamma_n = n u / (1 - n u), u = 2^-53; Higham 2002, eq. 4.4),
    in any order, forwards or as the total minus the rest: |dS_L| <= 2 gamma_n A,
    |dS_R| <= 3 gamma_n A + u A. The proxy S_L^2 / n_L + S_R^2 / n_R moves by at most
    2 |dS_L| + 2 |dS_R| (|S| / n_side <= 1) plus its own rounding, 3 u P with P <= A: under
    16 n u A for either order. An impurity S2 / m - (S / m)^2 of a node of m samples from
    these sums moves by less than this over m (S2 sums r^2 <= |r|). Returned: the bound on
    the difference between two orders' proxies, twice 16 n u A, plus 32 u for room.
    """
    return 32.0 * _UNIT_ROUNDOFF * (n * abs_total + 1.0)


# The scan's and the partition's inner loops are kernels of their own, indexed with unsigned
# integers: numba wraps a signed index (``a[i]`` with i < 0 reads ``a[len + i]``), which costs
# instructions and registers in every access, and inside ``_grow_tree`` the loops shared the
# registers with the whole function. The same operations in the same order, so the same trees:
# 1.67x faster fits with the stable tie order, 1.49x with scikit-learn's (the study's codes, five
# factors on two threads; the paired probe is in the commit message).
_ONE = np.uint64(1)


@_jit
def _sum_from_end(samples, residual, sum_total, p, end):
    """Criterion.update from the end: the total minus the residuals of samples[p:end], last first."""
    sum_left = sum_total
    for q in range(end - 1, p - 1, -1):
        sum_left -= residual[samples[q]]
    return sum_left


@_jit
def _next_candidate_split(
    samples, sorted_at, residual, inverse, start, end, p, sum_left, value, sum_total, threshold
):
    """The next split position past p whose proxy's bound beats ``threshold``, as scikit-learn reaches it.

    samples[start:end] (int32) the node's samples in the feature's order, sorted_at (float32)
    their values; the criterion is at position p (samples[start:p] on the left, their sum
    ``sum_left``; ``value`` = sorted_at[p]). Partitioner.next_p steps over values within
    FEATURE_THRESHOLD of their predecessor; Criterion.update adds the samples stepped over to
    ``sum_left`` in order, or, where the step is longer than the rest of the node, subtracts
    the rest from the total (``_sum_from_end``). Every sample is added in order as it is
    stepped over: the same sums as scikit-learn's update from candidate to candidate.

    Returns (p, sum_left, value) at the first position whose ``_BOUND_SLACK`` bound on the
    proxy is above ``threshold``; p = end where none is.
    """
    last = np.uint64(end - 1)
    q = np.uint64(p)
    while q < last:
        sum_left += residual[np.uint64(np.uint32(samples[q]))]
        q += _ONE
        following = sorted_at[q]
        if following <= value + _FEATURE_THRESHOLD:
            value = following
            continue
        value = following
        if np.int64(q) - p > end - np.int64(q):
            sum_left = _sum_from_end(samples, residual, sum_total, np.int64(q), end)
        p = np.int64(q)
        sum_right = sum_total - sum_left
        inverse_left = inverse[q - np.uint64(start)]  # 1 / n_left
        inverse_right = inverse[np.uint64(end) - q]
        bound = sum_left * sum_left * inverse_left + sum_right * sum_right * inverse_right
        if bound * _BOUND_SLACK > threshold:
            return p, sum_left, value
    return end, sum_left, value


@_jit
def _stable_partition(samples, sorted_at, goes_left, start, end, scratch, scratch_values):
    """Stable-partition samples[start:end] (int32) and their values: the left-going first.

    goes_left: (N,) int8 per sample; scratch, scratch_values: (N,) room for the right-going.
    """
    n_left = np.uint64(start)
    n_right = np.uint64(0)
    for q in range(np.uint64(start), np.uint64(end)):  # branch-free: both slots written, one kept
        sample = samples[q]
        value = sorted_at[q]
        is_left = np.uint64(goes_left[np.uint64(np.uint32(sample))])
        samples[n_left] = sample
        sorted_at[n_left] = value
        scratch[n_right] = sample
        scratch_values[n_right] = value
        n_left += is_left
        n_right += _ONE - is_left
    for q in range(n_right):
        samples[n_left + q] = scratch[q]
        sorted_at[n_left + q] = scratch_values[q]


@_jit
def _grow_tree(
    xt,
    presorted,
    presorted_values,
    inverse,
    group_feature,
    group_offset,
    group_member,
    alike,
    residual,
    max_depth,
    seed,
    certify,
):
    """One squared-error regression tree on ``residual``, grown as scikit-learn's best splitter does.

    xt: (F, N) float32 feature values; presorted: (F, N) int32 samples in ascending order of each
    feature, samples with equal values grouped by twin (the same row and label; a row's twins next
    to each other); presorted_values: (F, N) float32 their values (``xt`` taken along
    ``presorted``), partitioned with them so that a scan reads values in order; inverse: (N + 1,)
    float64, ``1 / n`` (0 at 0), for the scan's bound on a proxy (``_BOUND_SLACK``); alike: (N,) int64,
    equal for samples whose residuals in this tree are equal at every stage (the same feature row
    and the same one-hot value of this tree's class: ``_class_alike``), so that their order cannot
    change a sum; group_feature (G,), group_offset (G + 1,), group_member: the tie groups whose
    order may matter (a feature's value shared by samples that are not twins; none with the "stable"
    tie order), group g's samples being ``group_member[group_offset[g]:group_offset[g + 1]]``:
    scikit-learn's sort is replayed on a feature in a node that holds two samples of one of its
    groups that are not alike; residual: (N,) float64 targets, in [-1, 1] (a log loss's negative
    gradient); seed: the splitter's ``rand_r_state``, which orders the features visited at each node
    as scikit-learn's does (it decides between exactly tied splits).

    certify: instead of replaying the sorts, sum in the presorted order and check that no
    decision can depend on the order. A sum is scikit-learn's to the bit where its order is
    (up to twins): a feature's scan in a node is, if the node's sample order is and no tie
    group of the feature is split between non-twins in it; a node's sample order is that of
    the last feature its parent sorted, so it is scikit-learn's if that sort was. Every
    comparison that makes the tree (the best split's proxy against each other candidate's, a
    node's impurity against EPSILON, a split's improvement against -EPSILON) must be between
    such exact sums, or win by more than the difference the order can make
    (``_order_error``). The tree's splits, and so its leaves and predictions, are then
    scikit-learn's; its impurities (the importances) are equal to the last bits.

    Returns the node count, the tree as arrays of MAX_NODES rows: feature (-1 for a leaf),
    threshold, children (left, right), sample count, impurity; and False where ``certify``
    found a comparison too close to call (grow the tree again without ``certify``).
    """
    n_features, n_samples = xt.shape
    tree_feature = np.full(MAX_NODES, -1, np.int64)
    tree_threshold = np.zeros(MAX_NODES, np.float64)
    tree_children = np.zeros((MAX_NODES, 2), np.int64)
    tree_n = np.zeros(MAX_NODES, np.int64)
    tree_impurity = np.zeros(MAX_NODES, np.float64)
    # Each node's samples, sorted per feature, in one contiguous segment of every row.
    work = presorted.copy()
    work_values = presorted_values.copy()  # (F, N) the values of ``work``'s samples, moved with them
    scratch = np.empty(n_samples, np.int32)  # the right-going samples of a partition
    scratch_values = np.empty(n_samples, np.float32)
    goes_left = np.empty(n_samples, np.int8)
    sort_values = np.empty(n_samples, np.float32)  # the replayed introsort's keys ...
    sorted_values = np.empty(n_samples, np.float32)  # ... and their sorted order
    tie_prefix = np.empty(n_samples, np.int64)
    sample_node = np.zeros(n_samples, np.int64)  # the node each sample is in, kept for the tie groups
    conflicted = np.zeros(n_features, np.bool_)  # per node: features with a tie between samples not alike
    # scikit-learn's own sample array: its order fixes the order of the criterion's sums, and
    # so their rounding, which decides between splits that tie in exact arithmetic.
    node_order = np.arange(n_samples).astype(np.int32)
    # Explicit stack of nodes to split: start, end, depth, node id, impurity (depth first, left first).
    stack_start = np.empty(MAX_NODES, np.int64)
    stack_end = np.empty(MAX_NODES, np.int64)
    stack_depth = np.empty(MAX_NODES, np.int64)
    stack_node = np.empty(MAX_NODES, np.int64)
    stack_impurity = np.empty(MAX_NODES, np.float64)
    stack_error = np.zeros(MAX_NODES, np.float64)  # how far the order of sums can move the impurity
    stack_exact = np.ones(MAX_NODES, np.bool_)  # whether the node's sample order is scikit-learn's
    stack_constants = np.empty(MAX_NODES, np.int64)  # features known constant in the node
    features = np.arange(n_features)  # BestSplitter's feature array, permuted in place across nodes
    constant_features = np.empty(n_features, np.int64)
    state = seed
    top = 0
    stack_start[0], stack_end[0], stack_depth[0], stack_node[0], stack_constants[0] = 0, n_samples, 0, 0, 0
    stack_impurity[0] = math.inf  # the root's is computed from its sums, as Splitter.node_impurity does
    node_count = 1
    while top >= 0:
        start, end, depth = stack_start[top], stack_end[top], stack_depth[top]
        node, impurity, n_known_constants = stack_node[top], stack_impurity[top], stack_constants[top]
        impurity_error = stack_error[top]
        node_exact = stack_exact[top]
        top -= 1
        n_node = end - start
        tree_n[node] = n_node
        tree_impurity[node] = impurity
        if depth >= max_depth or n_node < 2:
            continue
        sum_total = 0.0  # Criterion.init, in the node's sample order
        sq_sum_total = 0.0
        abs_total = 0.0
        r_min = r_max = residual[node_order[start]]
        for p in range(start, end):
            r = residual[node_order[p]]
            sum_total += r
            sq_sum_total += r * r
            abs_total += abs(r)
            r_min = min(r_min, r)
            r_max = max(r_max, r)
        # With every residual equal, every sum is the same in any order.
        error = 0.0 if r_min == r_max else _order_error(n_node, abs_total)
        if node == 0:
            impurity = sq_sum_total / n_node - (sum_total / n_node) ** 2
            tree_impurity[0] = impurity  # in the samples' own order: scikit-learn's
        if certify and abs(impurity - _EPSILON) <= impurity_error:
            return node_count, tree_feature, tree_threshold, tree_children, tree_n, tree_impurity, False
        if impurity <= _EPSILON:
            continue
        conflicted[:] = False
        for g in range(len(group_feature)):
            first = -1
            for m in range(group_offset[g], group_offset[g + 1]):
                sample = group_member[m]
                if sample_node[sample] == node:
                    if first < 0:
                        first = alike[sample]
                    elif alike[sample] != first:
                        conflicted[group_feature[g]] = True
                        break
        # Each visited feature re-sorts scikit-learn's node samples; without ties the order is
        # that feature's sorted segment (kept pending until needed), with ties its introsort's.
        pending = -1
        best_proxy = -math.inf
        best_exact = True
        top_exact = -math.inf  # certify: the best proxy from exact sums, ...
        top_inexact = -math.inf  # ... the two best from sums whose order may differ
        second_inexact = -math.inf
        last_conflicted = False  # whether the last sort's order may differ from scikit-learn's
        best_feature = -1
        best_pos = end
        best_threshold = 0.0
        # node_split_best's feature sampling without replacement (max_features = all), skipping
        # the features known to be constant and recording those found constant.
        f_i = n_features
        n_visited = 0
        n_found_constants = 0
        n_drawn_constants = 0
        n_total_constants = n_known_constants
        while f_i > n_total_constants and (
            n_visited < n_features or n_visited <= n_found_constants + n_drawn_constants
        ):
            n_visited += 1
            state, draw = _our_rand_r(state)
            f_j = n_drawn_constants + draw % (f_i - n_found_constants - n_drawn_constants)
            if f_j < n_known_constants:
                features[n_drawn_constants], features[f_j] = features[f_j], features[n_drawn_constants]
                n_drawn_constants += 1
                continue
            f_j += n_found_constants
            f = features[f_j]
            samples = work[f]
            values = xt[f]
            sorted_at = work_values[f]  # (N,) values in ``samples``' order
            tied = False
            last_conflicted = conflicted[f]
            exact = not certify or (node_exact and not conflicted[f])
            if conflicted[f] and not certify:
                tie_prefix[start] = 0
                for q in range(start + 1, end):
                    tie_prefix[q] = tie_prefix[q - 1]
                    previous, sample = samples[q - 1], samples[q]
                    if values[sample] == values[previous] and alike[sample] != alike[previous]:
                        tie_prefix[q] += 1
                tied = tie_prefix[end - 1] > 0
            if tied:  # emulate the sort, and scan in its order: it fixes the sums' rounding
                if pending >= 0:
                    node_order[start:end] = work[pending, start:end]
                    pending = -1
                for q in range(start, end):
                    sort_values[q] = values[node_order[q]]
                    sorted_values[q] = values[samples[q]]
                depth_limit = 2 * int(math.log2(end - start))
                _introsort_3way(
                    sort_values,
                    node_order,
                    start,
                    end - start,
                    depth_limit,
                    samples,
                    sorted_values,
                    tie_prefix,
                )
                samples = node_order
                sorted_at = sort_values
            else:
                pending = f
            if sorted_at[end - 1] <= sorted_at[start] + _FEATURE_THRESHOLD:
                features[f_j], features[n_total_constants] = features[n_total_constants], features[f_j]
                n_found_constants += 1
                n_total_constants += 1
                continue
            f_i -= 1
            features[f_i], features[f_j] = features[f_j], features[f_i]
            # Criterion.update from candidate to candidate; a proxy only where its bound could matter.
            threshold = best_proxy if not certify else (top_exact if exact else second_inexact)
            p = start  # the criterion's position: samples[start:p] are on the left
            sum_left = 0.0
            value = sorted_at[start]
            while True:
                p, sum_left, value = _next_candidate_split(
                    samples,
                    sorted_at,
                    residual,
                    inverse,
                    start,
                    end,
                    p,
                    sum_left,
                    value,
                    sum_total,
                    threshold,
                )
                if p >= end:
                    break
                n_left = p - start
                n_right = end - p
                sum_right = sum_total - sum_left
                # MSE.proxy_impurity_improvement: the same operations, so the same rounding.
                proxy = sum_left * sum_left / n_left + sum_right * sum_right / n_right
                if certify:  # the margins' bookkeeping; none on the plain scan (DCI's, the replay's)
                    if exact:
                        top_exact = max(top_exact, proxy)
                    elif proxy > top_inexact:
                        second_inexact = top_inexact
                        top_inexact = proxy
                    elif proxy > second_inexact:
                        second_inexact = proxy
                if proxy > best_proxy:
                    best_exact = exact
                    best_proxy = proxy
                    best_feature = f
                    best_pos = p
                    lower, upper = np.float64(sorted_at[p - 1]), np.float64(sorted_at[p])
                    best_threshold = lower / 2.0 + upper / 2.0
                # A proxy no larger than this changes nothing: not the best, nor (certify) the best
                # exact one or the two best inexact ones (each at most the best).
                threshold = best_proxy if not certify else (top_exact if exact else second_inexact)
        features[:n_known_constants] = constant_features[:n_known_constants]
        constant_features[n_known_constants:n_total_constants] = features[n_known_constants:n_total_constants]
        if pending >= 0:
            node_order[start:end] = work[pending, start:end]
        if best_feature < 0:
            continue  # no valid split in any feature
        # Exact proxies compare as scikit-learn's do; an inexact one is within ``error`` of its own.
        if best_exact:
            certain = best_proxy - top_inexact > error
        else:
            certain = best_proxy - second_inexact > 2.0 * error and best_proxy - top_exact > error
        if not certain:
            return node_count, tree_feature, tree_threshold, tree_children, tree_n, tree_impurity, False
        chosen = work[best_feature]
        # Partitioner.partition_samples_final: swap the right-going samples to the end.
        values = xt[best_feature]
        lo, hi = start, end
        while lo < hi:
            if values[node_order[lo]] <= best_threshold:
                lo += 1
            else:
                hi -= 1
                node_order[lo], node_order[hi] = node_order[hi], node_order[lo]
        # Criterion.reset, update(best_pos) and children_impurity, in that sample order.
        if best_pos - start <= end - best_pos:
            left_sum = 0.0
            for q in range(start, best_pos):
                left_sum += residual[node_order[q]]
        else:
            left_sum = _sum_from_end(node_order, residual, sum_total, best_pos, end)
        left_sq = 0.0
        for q in range(start, best_pos):
            r = residual[node_order[q]]
            left_sq += r * r
        n_left = best_pos - start
        n_right = end - best_pos
        right_sum = sum_total - left_sum
        right_sq = sq_sum_total - left_sq
        impurity_left = left_sq / n_left - (left_sum / n_left) ** 2
        impurity_right = right_sq / n_right - (right_sum / n_right) ** 2
        improvement = (n_node / n_samples) * (
            impurity - (n_right / n_node) * impurity_right - (n_left / n_node) * impurity_left
        )
        # The children's order is scikit-learn's if the last sort's was; their impurities use the totals too.
        children_exact = not last_conflicted
        error_left = error_right = 0.0
        if certify and not (node_exact and children_exact):
            error_left, error_right = error / n_left, error / n_right
        improvement_error = (n_node / n_samples) * (
            impurity_error + (n_right / n_node) * error_right + (n_left / n_node) * error_left
        )
        if improvement_error > 0.0 and abs(improvement + _EPSILON) <= 2.0 * improvement_error:
            return node_count, tree_feature, tree_threshold, tree_children, tree_n, tree_impurity, False
        if improvement + _EPSILON < 0.0:
            continue
        left, right = node_count, node_count + 1
        node_count += 2
        if depth + 1 < max_depth:  # children to be split: stable-partition every sorted segment
            for q in range(start, best_pos):
                goes_left[chosen[q]] = True
                sample_node[chosen[q]] = left
            for q in range(best_pos, end):
                goes_left[chosen[q]] = False
                sample_node[chosen[q]] = right
            for f in range(n_features):
                if f == best_feature:
                    continue  # already partitioned: its left samples are exactly those before best_pos
                _stable_partition(work[f], work_values[f], goes_left, start, end, scratch, scratch_values)
        tree_feature[node] = best_feature
        tree_threshold[node] = best_threshold
        tree_children[node, 0] = left
        tree_children[node, 1] = right
        # Push right first so that the left child is grown first, as scikit-learn does.
        top += 1
        stack_start[top], stack_end[top], stack_depth[top] = best_pos, end, depth + 1
        stack_node[top], stack_impurity[top], stack_constants[top] = right, impurity_right, n_total_constants
        stack_error[top], stack_exact[top] = error_right, children_exact
        top += 1
        stack_start[top], stack_end[top], stack_depth[top] = start, best_pos, depth + 1
        stack_node[top], stack_impurity[top], stack_constants[top] = left, impurity_left, n_total_constants
        stack_error[top], stack_exact[top] = error_left, children_exact
    return node_count, tree_feature, tree_threshold, tree_children, tree_n, tree_impurity, True


@_jit
def _leaf_of(x, tree_feature, tree_threshold, tree_children, out):
    """Leaf index of each row of x (N, F) float32 (``X[:, f] <= threshold`` goes left).

    Without branches, which rows mispredict: every row takes MAX_DEPTH steps, a leaf stepping to
    itself (1.07-1.12x faster fits than following each row's path to its leaf).
    """
    n_nodes = len(tree_feature)
    step_feature = np.zeros(n_nodes, np.uint64)  # (n_nodes,) a leaf compares feature 0 ...
    step_threshold = np.full(n_nodes, np.inf)  # ... with +inf, and steps to itself either way
    step_child = np.empty((n_nodes, 2), np.uint64)
    for node in range(n_nodes):
        if tree_feature[node] >= 0:
            step_feature[node] = tree_feature[node]
            step_threshold[node] = tree_threshold[node]
            step_child[node, 0] = tree_children[node, 0]
            step_child[node, 1] = tree_children[node, 1]
        else:
            step_child[node, 0] = step_child[node, 1] = node
    for i in range(np.uint64(x.shape[0])):
        node = np.uint64(0)
        for _ in range(MAX_DEPTH):
            goes_right = np.uint64(not x[i, step_feature[node]] <= step_threshold[node])  # NaN: right
            node = step_child[node, goes_right]
        out[i] = node


@_jit
def _pairwise_sum(a, start, n):
    """numpy's ``pairwise_sum`` of ``a[start:start + n]`` (float64, contiguous), bit for bit.

    scikit-learn's leaf values are ``np.average`` of the leaf's samples, so matching its
    rounding, and with it its choice between tied splits later on, needs numpy's summation.
    """
    if n < 8:
        total = 0.0
        for i in range(start, start + n):
            total += a[i]
        return total
    if n <= 128:  # PW_BLOCKSIZE: eight accumulators
        r0, r1, r2, r3 = a[start], a[start + 1], a[start + 2], a[start + 3]
        r4, r5, r6, r7 = a[start + 4], a[start + 5], a[start + 6], a[start + 7]
        i = 8
        while i < n - (n % 8):
            r0 += a[start + i]
            r1 += a[start + i + 1]
            r2 += a[start + i + 2]
            r3 += a[start + i + 3]
            r4 += a[start + i + 4]
            r5 += a[start + i + 5]
            r6 += a[start + i + 6]
            r7 += a[start + i + 7]
            i += 8
        total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < n:
            total += a[start + i]
            i += 1
        return total
    half = n // 2
    half -= half % 8
    return _pairwise_sum(a, start, half) + _pairwise_sum(a, start + half, n - half)


@_jit
def _class_alike(row, onehot_k, out):
    """(N,) keys equal for samples whose residuals in class k's trees are equal at every stage.

    Samples with the same feature row (``row``, (N,)) fall in the same leaf of every tree, so
    their raw scores, and the probabilities p from them, are equal to the bit at every stage;
    the residual ``onehot_k - p_k`` then differs only where ``onehot_k`` (N,) does.
    """
    for i in range(len(row)):
        out[i] = 2 * row[i] + (1 if onehot_k[i] != 0.0 else 0)


@_jit
def _fit_stage_trees(
    x,
    xt,
    presorted,
    presorted_values,
    inverse,
    group_feature,
    group_offset,
    group_member,
    row,
    neg_gradient,
    onehot,
    classes,
    seeds,
    factor,
    learning_rate,
    max_depth,
    raw_train,
    x_test,
    raw_test,
    importance,
    relevant,
):
    """Grow the trees of one stage for the given classes and apply their Newton-step leaves.

    neg_gradient, onehot, raw_train: (K, N), class-major so that a class's column is
    contiguous; inverse: (N + 1,) ``1 / n`` for every tree's scans (``_grow_tree``); raw_test:
    (K, M); importance: (K, F) float64 accumulates each class's unnormalised tree importances;
    relevant: (K,) counts trees with more than one node; seeds: (K,) the trees' splitter seeds;
    row: (N,) int64, equal for samples with the same feature row (``_class_alike``). Only the
    columns in ``classes`` are written, so calls on disjoint class sets may run concurrently.
    """
    n_samples = xt.shape[1]
    leaf_train = np.empty(n_samples, np.int64)
    leaf_test = np.empty(x_test.shape[0], np.int64)
    count = np.empty(MAX_NODES, np.int64)
    offset = np.empty(MAX_NODES + 1, np.int64)
    fill = np.empty(MAX_NODES, np.int64)
    leaf_gradient = np.empty(n_samples, np.float64)  # grouped by leaf, in sample order
    leaf_hessian = np.empty(n_samples, np.float64)
    value = np.empty(MAX_NODES, np.float64)
    alike = np.empty(n_samples, np.int64)
    for k in classes:
        _class_alike(row, onehot[k], alike)
        groups = (group_feature, group_offset, group_member, alike)
        certify = len(group_feature) > 0  # only where the sort's tie order could matter
        node_count, tree_feature, tree_threshold, tree_children, tree_n, tree_impurity, certain = _grow_tree(
            xt, presorted, presorted_values, inverse, *groups, neg_gradient[k], max_depth, seeds[k], certify
        )
        if not certain:  # too close to call in the presorted order: replay scikit-learn's sorts
            node_count, tree_feature, tree_threshold, tree_children, tree_n, tree_impurity, _ = _grow_tree(
                xt, presorted, presorted_values, inverse, *groups, neg_gradient[k], max_depth, seeds[k], False
            )
        if node_count > 1:
            relevant[k] += 1
            for node in range(node_count):
                if tree_feature[node] >= 0:
                    left, right = tree_children[node, 0], tree_children[node, 1]
                    importance[k, tree_feature[node]] += (
                        tree_n[node] * tree_impurity[node]
                        - tree_n[left] * tree_impurity[left]
                        - tree_n[right] * tree_impurity[right]
                    ) / n_samples
        # Newton step per leaf (_update_terminal_regions): mean(g) * factor / mean(p (1 - p)) with
        # p = y - g, the means summed as numpy sums the leaf's samples taken in index order.
        _leaf_of(x, tree_feature, tree_threshold, tree_children, leaf_train)
        count[:] = 0
        for i in range(n_samples):
            count[leaf_train[i]] += 1
        offset[0] = 0
        for node in range(MAX_NODES):
            offset[node + 1] = offset[node] + count[node]
            fill[node] = offset[node]
        for i in range(n_samples):
            leaf = leaf_train[i]
            g = neg_gradient[k, i]
            prob = onehot[k, i] - g
            leaf_gradient[fill[leaf]] = g
            leaf_hessian[fill[leaf]] = prob * (1.0 - prob)
            fill[leaf] += 1
        for node in range(node_count):
            value[node] = 0.0
            if count[node] > 0:
                numerator = _pairwise_sum(leaf_gradient, offset[node], count[node]) / count[node] * factor
                denominator = _pairwise_sum(leaf_hessian, offset[node], count[node]) / count[node]
                if abs(denominator) >= 1e-150:
                    value[node] = numerator / denominator
        for i in range(n_samples):
            raw_train[k, i] += learning_rate * value[leaf_train[i]]
        _leaf_of(x_test, tree_feature, tree_threshold, tree_children, leaf_test)
        for i in range(x_test.shape[0]):
            raw_test[k, i] += learning_rate * value[leaf_test[i]]


@_jit
def _negative_gradient(raw, onehot, binary, out):
    """``y - softmax(raw)`` per sample (binary: ``y - expit(raw)``) as scikit-learn's losses; (K, N)."""
    k_total, n = raw.shape
    for i in range(n):
        if binary:  # cgradient_half_binomial, negated
            r = raw[0, i]
            y = onehot[0, i]
            if r > -37:
                e = math.exp(-r)
                out[0, i] = -(((1 - y) - y * e) / (1 + e))
            else:
                out[0, i] = -(math.exp(r) - y)
            continue
        top = raw[0, i]
        for k in range(1, k_total):
            top = max(top, raw[k, i])
        total = 0.0  # sum_exp_minus_max
        for k in range(k_total):
            out[k, i] = math.exp(raw[k, i] - top)
            total += out[k, i]
        for k in range(k_total):
            out[k, i] = -(out[k, i] / total - onehot[k, i])


def _tie_groups(xt, presorted, twin, replay):
    """The tie groups whose order matters: per feature, the runs of one value held by non-twins.

    xt, presorted: (F, N), equal values grouped by twin in ``presorted``; twin: (N,).
    Returns group_feature (G,), group_offset (G + 1,) and group_member (M,) int32: group g's
    samples are ``group_member[group_offset[g]:group_offset[g + 1]]``. Empty if not ``replay``.
    """
    group_feature, group_offset, group_member = [], [0], []
    if replay:
        for feature, (values, order) in enumerate(zip(xt, presorted)):
            sorted_values, sorted_twins = values[order], twin[order]
            run = np.r_[0, np.cumsum(sorted_values[1:] != sorted_values[:-1])]  # (N,) run id in sorted order
            mixed = (sorted_values[1:] == sorted_values[:-1]) & (sorted_twins[1:] != sorted_twins[:-1])
            for run_id in np.unique(run[1:][mixed]):
                members = order[run == run_id]
                group_feature.append(feature)
                group_member.extend(members.tolist())
                group_offset.append(len(group_member))
    return (
        np.asarray(group_feature, np.int64),
        np.asarray(group_offset, np.int64),
        np.asarray(group_member, np.int32),
    )


def _draw_tree_seeds(random_state: object, n_classes: int, n_stages: int = 100) -> np.ndarray:
    """The splitter seeds ``(n_stages, n_trees)`` of one fit's trees, drawn from ``random_state``.

    As scikit-learn draws them (``Splitter.init``: ``random_state.randint(0, RAND_R_MAX)`` per
    tree, stage by stage, class by class; one tree a stage for two classes). ``random_state``
    is an int seed or a bit generator, whose state the draws advance: drawing the seeds of
    several fits one after another, in their order, and growing them in any order or side by
    side gives the trees of fitting them one after another on that stream.
    """
    n_trees = 1 if n_classes == 2 else n_classes
    return np.random.RandomState(random_state).randint(0, 2147483647, size=(n_stages, n_trees))


def fit_gradient_boosting(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    *,
    n_stages: int = 100,
    learning_rate: float = 0.1,
    max_depth: int = 3,
    random_state: int = 0,
    tie_order: str = "stable",
    n_jobs: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``GradientBoostingClassifier(**defaults).fit(x_train, y_train)``, faster.

    Args:
        x_train: (N, F) features (cast to float32, as scikit-learn does).
        y_train: (N,) labels with at least two distinct values.
        x_test: (M, F) features to predict.
        n_stages: scikit-learn's ``n_estimators`` (default 100).
        learning_rate: scikit-learn's ``learning_rate`` (default 0.1).
        max_depth: scikit-learn's ``max_depth`` (default 3).
        random_state: as scikit-learn's: seeds the order in which each node visits the
            features, which decides between exactly tied splits. The same seed gives the
            same trees as ``GradientBoostingClassifier(random_state=random_state)``.
        tie_order: the order in which samples with equal values of a code are summed.
            ``"sklearn"`` reproduces scikit-learn's introsort step by step wherever the
            order could decide a split, so that every split, leaf and prediction is
            scikit-learn's to the bit (the importances to the last bits).
            ``"stable"`` (the default) sums them in sample order: the same wherever a code
            has no repeated value, and on repeated values a difference in the last bits of
            the split criterion, which can only change the choice between two splits that
            tie exactly. It saves the sort scikit-learn does at every node (3-4x faster on
            codes with few distinct values).
        n_jobs: threads growing a stage's per-class trees side by side.

    Returns:
        ``feature_importances_`` (F,), the predicted labels of x_train (N,) and of x_test (M,).
    """
    settings = {"n_stages": n_stages, "learning_rate": learning_rate, "max_depth": max_depth}
    problems = [(x_train, y_train, x_test)]
    return fit_gradient_boostings(problems, [random_state], tie_order=tie_order, n_jobs=n_jobs, **settings)[0]


def fit_gradient_boostings(
    problems: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    random_states: Sequence[object],
    *,
    n_stages: int = 100,
    learning_rate: float = 0.1,
    max_depth: int = 3,
    tie_order: str = "stable",
    n_jobs: int = 1,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``fit_gradient_boosting`` on each ``(x_train, y_train, x_test)`` of ``problems``, side by side.

    Each fit's seeds come from its ``random_states`` entry: an int, or a bit generator the fits
    may share (dlib's global RNG), drawn from in the problems' order before any tree grows, so
    the trees are those of fitting one after another on that stream. The fits' stages run as
    tasks on ``n_jobs`` threads: a stage's trees (one task each; one task a stage for a small
    fit) once its gradients are computed, taken first come, first served across the fits, so
    no thread waits at one fit's stage while another has trees to grow (``_grow_stages``).
    Every tree is the one growing the fits one after another gives (tests/metrics/
    test_exact_gbt.py). Returns each fit's ``fit_gradient_boosting`` outputs, in order.
    """
    if tie_order not in ("sklearn", "stable"):
        raise ValueError(f"tie_order must be 'sklearn' or 'stable'; got {tie_order!r}")
    if max_depth > MAX_DEPTH:
        raise ValueError(
            f"max_depth must be <= {MAX_DEPTH} (the tree buffers hold {MAX_NODES} nodes); got {max_depth}"
        )
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive integer; got {n_jobs}")
    if len(random_states) != len(problems):
        raise ValueError(f"{len(problems)} problems need as many random_states; got {len(random_states)}")
    arrays = []
    for x_train, y_train, x_test in problems:
        labels, encoded = np.unique(np.asarray(y_train), return_inverse=True)
        if len(labels) < 2:
            raise ValueError(f"y_train must hold at least two classes; got {labels.tolist()}")
        x, x_test = (np.ascontiguousarray(a, dtype=np.float32) for a in (x_train, x_test))
        arrays.append((x, np.asarray(y_train), x_test, labels, encoded.reshape(-1)))
    if not HAVE_NUMBA:  # the same models, in scikit-learn
        from sklearn.ensemble import GradientBoostingClassifier

        settings = {"n_estimators": n_stages, "learning_rate": learning_rate, "max_depth": max_depth}
        models = [
            GradientBoostingClassifier(**settings, random_state=random_state).fit(x, y)
            for (x, y, _, _, _), random_state in zip(arrays, random_states)
        ]
        return [
            (model.feature_importances_, model.predict(x), model.predict(x_test))
            for model, (x, _, x_test, _, _) in zip(models, arrays)
        ]
    fits = [
        _Boosting(
            x,
            labels,
            encoded,
            x_test,
            _draw_tree_seeds(random_state, len(labels), n_stages),
            learning_rate,
            max_depth,
            tie_order,
        )
        for (x, _, x_test, labels, encoded), random_state in zip(arrays, random_states)
    ]
    _grow_stages(fits, n_stages, n_jobs)
    return [fit.result() for fit in fits]


class _Boosting:
    """One fit's arrays, grown stage by stage by ``_grow_stages``; ``result()`` reads it off."""

    def __init__(self, x, labels, encoded, x_test, seeds, learning_rate, max_depth, tie_order):
        # labels (K,): the sorted classes; encoded (N,): each training point's index into them
        n_samples, n_features = x.shape
        n_classes = len(labels)
        self.binary = binary = n_classes == 2
        n_trees = 1 if binary else n_classes  # trees per stage
        # Initial raw scores from the class priors (DummyClassifier(strategy="prior")), clipped,
        # through the loss's link: logit, or the symmetric multinomial logit log(p / gmean(p)).
        eps = np.finfo(np.float64).eps
        counts = np.bincount(encoded, minlength=n_classes).astype(np.float64)
        prior = np.clip(counts / counts.sum(), eps, 1 - eps)[None, :]  # (1, K)
        if binary:
            init = scipy.special.logit(prior[:, 1:])
            onehot = (encoded == 1).astype(np.float64)[None, :]
            factor = 1.0
        else:
            init = np.log(prior / scipy.stats.gmean(prior, axis=1)[:, None])
            onehot = np.zeros((n_classes, n_samples))
            onehot[encoded, np.arange(n_samples)] = 1.0
            factor = (n_classes - 1) / n_classes
        raw_train = np.ascontiguousarray(np.tile(init, (n_samples, 1)).T)  # (K, N)
        raw_test = np.ascontiguousarray(np.tile(init, (len(x_test), 1)).T)
        xt = np.ascontiguousarray(x.T)  # (F, N): one feature's values contiguous
        # Twins: samples with the same row (bit for bit) and label. Their residuals are equal at
        # every stage, so the order in which a sort leaves them cannot change any sum: the replay
        # of scikit-learn's sort is needed only where a value is shared by samples that are not
        # twins (duplicates drawn with replacement are twins; codes that collide are not).
        # (F, N): each feature's samples in ascending order; "stable" sums equal values in sample
        # order and never replays the sort (no twins needed), "sklearn" groups them by twin to find
        # the non-twin ties. Within a tie the twins of one row are next to each other (the ids of
        # unique rows are in lexicographic order, the label last), so that each tree can tell the
        # samples of one row apart by its own class only (``_class_alike``).
        twin = np.zeros(n_samples, np.int64)
        row = np.zeros(n_samples, np.int64)
        presorted = np.argsort(xt, axis=1, kind="stable").astype(np.int32)
        if tie_order == "sklearn":
            row = np.unique(x.view(np.int32), axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)
            twin = np.unique(np.c_[row, encoded], axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)
            presorted = np.stack([np.lexsort((twin, values)) for values in xt]).astype(np.int32)
        groups = _tie_groups(xt, presorted, twin, tie_order == "sklearn")
        self.labels, self.seeds, self.onehot = labels, seeds, onehot
        self.raw_train, self.raw_test = raw_train, raw_test
        self.neg_gradient = np.empty((n_trees, n_samples))
        self.importance = np.zeros((n_trees, n_features))
        self.relevant = np.zeros(n_trees, np.int64)
        presorted_values = np.take_along_axis(xt, presorted, axis=1)  # (F, N)
        inverse = 1.0 / np.maximum(np.arange(n_samples + 1), 1.0)  # (N + 1,) 1 / n, once for all the trees
        inverse[0] = 0.0
        self.tree_args = (x, xt, presorted, presorted_values, inverse, *groups, row)
        self.tree_args += (self.neg_gradient, onehot)
        self.stage_args = (factor, learning_rate, max_depth, raw_train, x_test, raw_test)
        self.n_trees, self.n_samples = n_trees, n_samples

    def gradients(self) -> None:
        """The stage's negative gradients (K, N), from the raw scores of the stages before it."""
        _negative_gradient(self.raw_train, self.onehot, self.binary, self.neg_gradient)

    def grow(self, stage: int, classes: np.ndarray) -> None:
        """The trees of ``stage`` for ``classes`` (K',), their leaves added to the raw scores."""
        seeds = self.seeds[stage]
        _fit_stage_trees(*self.tree_args, classes, seeds, *self.stage_args, self.importance, self.relevant)

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``feature_importances_`` (F,), predicted labels of x_train (N,) and x_test (M,)."""
        # scikit-learn: mean over the trees with more than one node, normalised to sum 1.
        n_relevant = self.relevant.sum()
        if n_relevant == 0:
            feature_importance = np.zeros(self.importance.shape[1])
        else:
            average = self.importance.sum(axis=0) / n_relevant
            feature_importance = average / average.sum()
        if self.binary:
            train, test = (self.raw_train[0] >= 0).astype(int), (self.raw_test[0] >= 0).astype(int)
        else:
            train, test = np.argmax(self.raw_train, axis=0), np.argmax(self.raw_test, axis=0)
        return feature_importance, self.labels[train], self.labels[test]


#: A fit with fewer points x trees a stage than this grows a stage as one task (a task a tree
#: costs more in threads than the tree itself).
SMALL_STAGE = 20_000


def _grow_stages(fits: list[_Boosting], n_stages: int, n_jobs: int) -> None:
    """Every stage of every fit: a stage's gradients, then its trees, on ``n_jobs`` threads.

    A stage's trees are independent given its gradients, and write disjoint rows of the fit's
    arrays; a fit's next stage starts when the last of its trees is grown (by the thread that
    grew it), so the fits' stages interleave on the threads, first come, first served. The
    order changes no number.
    """
    everything = [np.arange(fit.n_trees, dtype=np.int64) for fit in fits]
    if n_jobs == 1 or not fits:
        for fit, classes in zip(fits, everything):
            for stage in range(n_stages):
                fit.gradients()
                fit.grow(stage, classes)
        return
    tasks = [
        [classes] if fit.n_samples * fit.n_trees < SMALL_STAGE else [classes[k : k + 1] for k in classes]
        for fit, classes in zip(fits, everything)
    ]
    lock = threading.Lock()
    done = threading.Event()
    stage = [0] * len(fits)
    remaining = [0] * len(fits)
    unfinished = [len(fits)]
    errors: list[BaseException] = []

    def start(f: int) -> None:  # the fit's next stage: its gradients, then its trees as tasks
        if stage[f] == n_stages:
            with lock:
                unfinished[0] -= 1
                if unfinished[0] == 0:
                    done.set()
            return
        fits[f].gradients()
        remaining[f] = len(tasks[f])
        for classes in tasks[f]:
            pool.submit(grow, f, classes)

    def grow(f: int, classes: np.ndarray) -> None:
        if errors:
            return
        try:
            fits[f].grow(stage[f], classes)
            with lock:
                remaining[f] -= 1
                last = remaining[f] == 0
            if last:
                stage[f] += 1
                start(f)
        except BaseException as error:  # raised in the calling thread below
            errors.append(error)
            done.set()

    with ThreadPoolExecutor(max_workers=n_jobs) as pool:
        try:
            for f in range(len(fits)):
                start(f)
        except BaseException as error:  # the tasks already queued stop at once
            errors.append(error)
            raise
        done.wait()
    if errors:
        raise errors[0]

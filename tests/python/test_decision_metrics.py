"""Decision metrics (docs/metrics.md) against numpy transcriptions of
scikit-learn's definitions, written out here (no scikit-learn needed):

  * binary curve: sort the scores decreasing; every distinct score t is a
    threshold with TP(t), FP(t) the positives and negatives whose score
    is >= t (tied scores enter together);
  * roc_curve (drop_intermediate=False): fpr = FP/N, tpr = TP/P at each
    threshold, after the point (0, 0) at threshold +inf;
    roc_auc_score: the trapezoid rule over those points;
  * precision_recall_curve: precision TP/(TP+FP), recall TP/P, reversed to
    increasing thresholds, then (precision 1, recall 0);
    average_precision_score: sum over thresholds of (R_k - R_{k-1}) P_k,
    steps rather than trapezoids;
  * precision_recall_fscore_support(zero_division=0) on the labels that
    occur in truth or prediction: precision TP/(TP+FP), recall
    TP/(TP+FN), F1 2TP/(2TP+FP+FN), 0 where the denominator is 0; macro
    is the plain mean, weighted the mean weighted by the true counts,
    micro the same ratios of the summed counts.

Threshold selection is compared with a brute force over the thresholds.
"""

import numpy as np
import pytest

import libnn


# ------------------------------------------------ scikit-learn, transcribed
def binary_clf_curve(y, s):
    y = np.asarray(y, np.float64)  # counts in float64, as scikit-learn
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(y)[last]
    fps = 1 + last - tps
    return fps, tps, s[last]


def sk_roc_curve(y, s):
    fps, tps, th = binary_clf_curve(y, s)
    fps, tps = np.r_[0, fps], np.r_[0, tps]
    return fps / fps[-1], tps / tps[-1], np.r_[np.inf, th]


def sk_auc(x, y):
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))


def sk_precision_recall_curve(y, s):
    fps, tps, th = binary_clf_curve(y, s)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return (np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0],
            th[::-1])


def sk_average_precision(y, s):
    p, r, _ = sk_precision_recall_curve(y, s)
    return float(-np.sum(np.diff(r) * p[:-1]))


def sk_prf(truth, pred, k):
    cm = np.zeros((k, k), np.int64)
    np.add.at(cm, (truth, pred), 1)
    tp, rows, cols = np.diag(cm), cm.sum(1), cm.sum(0)

    def div(a, b):
        return np.divide(a, b, out=np.zeros(len(a)), where=b != 0)

    per = dict(precision=div(tp, cols), recall=div(tp, rows),
               f1=div(2 * tp, rows + cols))
    present = (rows + cols) > 0
    out = {}
    for name, v in per.items():
        out[name] = v
        out[name + "_macro"] = v[present].mean() if present.any() else 0.0
        out[name + "_weighted"] = (np.sum(v * rows) / rows.sum()
                                   if rows.sum() else 0.0)
    micro = dict(precision=div(tp.sum(keepdims=True), cols.sum(keepdims=True)),
                 recall=div(tp.sum(keepdims=True), rows.sum(keepdims=True)),
                 f1=div(2 * tp.sum(keepdims=True),
                        (rows + cols).sum(keepdims=True)))
    for name, v in micro.items():
        out[name + "_micro"] = float(v[0])
    return cm, out


def scored_data(rng, n, ties):
    y = (rng.uniform(0, 1, n) < 0.3).astype(np.float32)
    s = (rng.standard_normal(n) + 1.5 * y).astype(np.float32)
    if ties:  # one decimal: many tied scores, some of both labels
        s = np.round(s, 1).astype(np.float32)
    return y, s


# ---------------------------------------------------------------- curves
@pytest.mark.parametrize("ties", [False, True])
def test_curves_match_sklearn_definitions(rng, ties):
    y, s = scored_data(rng, 300, ties)
    fpr, tpr, th = libnn.roc_curve(y, s)
    wf, wt, wth = sk_roc_curve(y, s)
    np.testing.assert_array_equal(th, wth.astype(np.float32))
    np.testing.assert_allclose(fpr, wf, rtol=1e-15)
    np.testing.assert_allclose(tpr, wt, rtol=1e-15)
    p, r, th = libnn.precision_recall_curve(y, s)
    wp, wr, wth = sk_precision_recall_curve(y, s)
    np.testing.assert_array_equal(th, wth)
    np.testing.assert_allclose(p, wp, rtol=1e-15)
    np.testing.assert_allclose(r, wr, rtol=1e-15)
    assert libnn.roc_auc_score(y, s) == pytest.approx(sk_auc(wf, wt),
                                                      rel=1e-12)
    assert libnn.average_precision_score(y, s) == pytest.approx(
        sk_average_precision(y, s), rel=1e-12)
    if ties:
        assert len(th) < len(np.unique(s)) + 1 and len(th) < 300


def test_auc_perfect_inverted_random(rng):
    y = np.r_[np.zeros(50), np.ones(50)].astype(np.float32)
    s = np.linspace(0, 1, 100, dtype=np.float32)
    assert libnn.roc_auc_score(y, s) == 1.0
    assert libnn.average_precision_score(y, s) == 1.0
    assert libnn.roc_auc_score(y, -s) == 0.0
    assert libnn.roc_auc_score(y, np.zeros(100, np.float32)) == 0.5
    y, s = (rng.uniform(0, 1, 20000) < 0.5).astype(np.float32), \
        rng.uniform(0, 1, 20000).astype(np.float32)
    assert abs(libnn.roc_auc_score(y, s) - 0.5) < 0.02


def test_curve_errors():
    with pytest.raises(libnn.InvalidArgument, match="both classes"):
        libnn.roc_auc_score([1, 1, 1], [0.2, 0.5, 0.1])
    with pytest.raises(libnn.InvalidArgument, match="without positive"):
        libnn.average_precision_score([0, 0], [0.2, 0.5])
    with pytest.raises(libnn.InvalidArgument, match="label 1 is 2"):
        libnn.Curve([0, 2], [0.1, 0.2])
    with pytest.raises(libnn.NumericError, match="score 0 is nan"):
        libnn.Curve([0, 1], [np.nan, 0.2])
    with pytest.raises(ValueError, match="2 labels for 3 scores"):
        libnn.Curve([0, 1], [0.1, 0.2, 0.3])
    c = libnn.Curve([0, 1], [0.1, 0.2])
    c.close()
    with pytest.raises(libnn.StateError):
        c.roc_auc


# ----------------------------------------------------- choosing a threshold
def brute_force(y, s, metric, target, largest):
    """Every distinct score as a threshold (score >= t is positive)."""
    best = None
    for t in np.unique(s):
        pred = s >= t
        tp = np.sum(pred & (y == 1))
        fp = np.sum(pred & (y == 0))
        value = tp / y.sum() if metric == "recall" else tp / (tp + fp)
        if value >= target and (best is None or (t > best if largest
                                                  else t < best)):
            best = t
    return best


@pytest.mark.parametrize("ties", [False, True])
def test_threshold_selection_brute_force(rng, ties):
    y, s = scored_data(rng, 200, ties)
    c = libnn.Curve(y, s)
    for target in (0.5, 0.9, 0.99, 1.0):
        r = c.threshold_for_recall(target)
        assert r["threshold"] == brute_force(y, s, "recall", target, True)
        pred = s >= np.float32(r["threshold"])
        assert r["tp"] == np.sum(pred & (y == 1))
        assert r["recall"] >= target
        assert r["precision"] == pytest.approx(r["tp"] / pred.sum())
    for target in (0.5, 0.7, 0.9):
        want = brute_force(y, s, "precision", target, False)
        if want is None:
            with pytest.raises(libnn.InvalidArgument, match="best these"):
                c.threshold_for_precision(target)
            continue
        r = c.threshold_for_precision(target)
        assert r["threshold"] == want and r["precision"] >= target


def test_threshold_hand_computed():
    """Six parts, four defective; 2/3 precision is met at 0.7 and again at
    0.4: the smallest threshold keeps every defect."""
    y = [1, 0, 1, 1, 0, 1]
    s = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    c = libnn.Curve(y, s)
    r = c.threshold_for_recall(0.75)
    assert r["threshold"] == pytest.approx(0.6) and r["precision"] == 0.75
    r = c.threshold_for_precision(0.66)
    assert r["threshold"] == pytest.approx(0.4) and r["recall"] == 1.0
    r = c.report(0.65)
    assert (r["tp"], r["fp"], r["tn"], r["fn"]) == (2, 1, 1, 2)
    assert r["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 2))
    with pytest.raises(libnn.InvalidArgument, match=r"\(0, 1\]"):
        c.threshold_for_recall(0)


# ------------------------------------------------- precision, recall, F1
def test_confusion_prf_match_sklearn_definitions(rng):
    k = 5
    out = rng.standard_normal((40, k)).astype(np.float32)
    out[:, 4] = -9  # class 4: never predicted, never true
    out[:, 3] = -9  # class 3: true but never predicted
    truth = rng.integers(0, 4, 40)
    cm = libnn.ConfusionMatrix(k)
    cm.update(out, truth.astype(np.float32))
    want_cm, want = sk_prf(truth, out.argmax(1), k)
    np.testing.assert_array_equal(cm.matrix, want_cm)
    for name in ("precision", "recall", "f1"):
        got = [getattr(cm, name)(c) for c in range(k)]
        np.testing.assert_allclose(got, want[name], rtol=1e-12)
        for avg in ("macro", "micro", "weighted"):
            assert getattr(cm, name)(average=avg) == pytest.approx(
                want[f"{name}_{avg}"], rel=1e-12), (name, avg)
    assert cm.precision(average="micro") == pytest.approx(
        cm.pixel_accuracy(), rel=1e-12)
    with pytest.raises(ValueError, match="average"):
        cm.f1(average="samples")


# ------------------------------------------------------------------ models
def classifier(seed=3, classes=3):
    m = libnn.Model(seed)
    h = m.dense(m.input((4,)), 8, activation="relu")
    m.dense(h, classes, activation="softmax")
    m.compile(libnn.Adam(learning_rate=0.05),
              "sparse_categorical_crossentropy")
    return m


def class_data(rng, n):
    x = rng.uniform(-1, 1, (n, 4)).astype(np.float32)
    v = x[:, 0] + 0.5 * x[:, 1]
    y = ((v > 0.3).astype(np.int64) + (v > 0.8)).astype(np.float32)
    return x, y


def test_evaluate_binary_against_numpy(rng):
    """Defective = any class but 0: the score is the sum of the other
    classes' probabilities of predict's output."""
    x, y = class_data(rng, 120)
    m = classifier()
    m.fit(x, y, epochs=10, batch_size=16)
    p = m.predict(x)
    score = p[:, 1:].astype(np.float64).sum(1).astype(np.float32)
    label = (y != 0).astype(np.float32)
    report, curve = m.evaluate_binary(x, y, negative_class=0, threshold=0.4,
                                      batch_size=32)
    fpr, tpr, _ = curve.roc()
    wf, wt, _ = sk_roc_curve(label, score)
    np.testing.assert_allclose(fpr, wf, rtol=1e-15)
    np.testing.assert_allclose(tpr, wt, rtol=1e-15)
    pred = score >= np.float32(0.4)
    tp = int(np.sum(pred & (label == 1)))
    assert report["tp"] == tp and report["fp"] == int(pred.sum()) - tp
    assert report["roc_auc"] == pytest.approx(sk_auc(wf, wt), rel=1e-12)
    assert report["average_precision"] == pytest.approx(
        sk_average_precision(label, score), rel=1e-12)
    assert report["roc_auc"] > 0.9
    # class 2 alone
    report, _ = m.evaluate_binary(x, y, positive_class=2)
    pred = p[:, 2] >= 0.5
    assert report["tp"] == int(np.sum(pred & (y == 2)))
    with pytest.raises(ValueError, match="not both"):
        m.evaluate_binary(x, y, positive_class=1, negative_class=0)
    with pytest.raises(libnn.InvalidArgument, match="positive_class 3"):
        m.evaluate_binary(x, y, positive_class=3)


def test_fit_decision_history_and_weights(rng):
    """An imbalanced set (about 1 defective in 10): class_weight raises
    the recall of the defective class at 0.5; the history's last
    validation values are evaluate_binary's."""
    x = rng.uniform(-1, 1, (400, 4)).astype(np.float32)
    y = (x[:, 0] + 0.3 * x[:, 1] > 0.75).astype(np.float32)
    vx, vy = x[:200], y[:200]
    recalls = []
    for cw in (None, {0: 1.0, 1: 9.0}):
        m = libnn.Model(4)
        h = m.dense(m.input((4,)), 8, activation="relu")
        m.dense(h, 1, activation="sigmoid")
        m.compile(libnn.Adam(learning_rate=0.02), "binary_crossentropy")
        hist = m.fit(x[200:], y[200:, None], epochs=8, batch_size=20,
                     validation_data=(vx, vy[:, None]), class_weight=cw,
                     decision_metrics=True)
        for k in ("precision", "recall", "f1", "roc_auc", "val_precision",
                  "val_recall", "val_f1", "val_roc_auc"):
            assert len(hist[k]) == 8 and np.isfinite(hist[k]).all(), k
        report, _ = m.evaluate_binary(vx, vy[:, None], batch_size=32)
        assert hist["val_recall"][-1] == pytest.approx(report["recall"],
                                                       rel=1e-6)
        assert hist["val_roc_auc"][-1] == pytest.approx(report["roc_auc"],
                                                        rel=1e-6)
        recalls.append(report["recall"])
    assert recalls[1] > recalls[0]

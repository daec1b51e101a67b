"""Metrics: ConfusionMatrix, the thresholded metrics of libnn's
nn_confusion (Keras MeanIoU semantics, docs/losses.md; precision, recall
and F1 as scikit-learn, docs/metrics.md), and Curve, the ROC and
precision-recall curves of binary scores with the choice of a decision
threshold (nn_curve; docs/metrics.md)."""

import ctypes

import numpy as np

from . import _lib, errors
from ._lib import lib
from .tensor import Handle, wrap


class _Owner:
    """An object owning one C handle (self._h, named self._what): closed
    by close() or a `with` block; methods raise StateError afterwards."""

    @property
    def _ptr(self):
        if not self._h:
            raise errors.StateError(f"the {self._what} is closed")
        return self._h.ptr

    def close(self):
        h, self._h = self._h, Handle(None, None)
        h.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ConfusionMatrix(_Owner):
    """Counts [truth, predicted] over every position of the batches given
    to update(). For outputs of C > 1 channels the prediction is the argmax
    over the last axis; for one channel, class 1 where the probability is
    > 0.5 (the logit > 0 with from_logits), and the matrix has 2 classes.

    >>> cm = ConfusionMatrix(2)
    >>> cm.update(model.predict(x), masks)
    >>> cm.iou(1), cm.mean_iou(), cm.pixel_accuracy()
    """

    def __init__(self, classes):
        if isinstance(classes, bool) or not isinstance(classes,
                                                       (int, np.integer)):
            raise errors.wrong_type(f"classes must be an int, got "
                                    f"{type(classes).__name__}")
        self._h = Handle(lib.nn_confusion_create(int(classes)),
                         lib.nn_confusion_free)
        self._what = "confusion matrix"


    @property
    def classes(self):
        return int(lib.nn_confusion_classes(self._ptr))

    def update(self, out, labels, from_logits=False):
        """Adds a batch: out [N, ..., C]; labels [N, ...] with one class id
        per position (mask values for one channel) or out's shape."""
        t_out, t_y = wrap(out, "out"), wrap(labels, "labels")
        lib.nn_confusion_update(self._ptr, t_out._ptr, t_y._ptr,
                                int(bool(from_logits)))

    def reset(self):
        lib.nn_confusion_reset(self._ptr)

    def count(self, truth, predicted):
        v = lib.nn_confusion_count(self._ptr, int(truth), int(predicted))
        if v < 0:
            raise errors.InvalidArgument(_lib.last_error(), None,
                                         "nn_confusion_count")
        return int(v)

    @property
    def matrix(self):
        """The counts as an int64 array [truth, predicted]."""
        k = self.classes
        return np.array([[self.count(t, p) for p in range(k)]
                         for t in range(k)], dtype=np.int64)

    def _class(self, fn, cls):
        k = self.classes
        if not 0 <= int(cls) < k:
            raise errors.invalid(f"class {cls} outside [0, {k})")
        return float(fn(self._ptr, int(cls)))

    def iou(self, cls):
        """IoU of one class; NaN when it is in neither truth nor
        prediction."""
        return self._class(lib.nn_confusion_iou, cls)

    def dice(self, cls):
        return self._class(lib.nn_confusion_dice, cls)

    def mean_iou(self, first_class=0):
        """Mean IoU over the classes from first_class on that occur (Keras
        MeanIoU for 0; 1 leaves out the background class 0)."""
        return self._class(lib.nn_confusion_mean_iou, first_class)

    def mean_dice(self, first_class=0):
        return self._class(lib.nn_confusion_mean_dice, first_class)

    def pixel_accuracy(self):
        return float(lib.nn_confusion_pixel_accuracy(self._ptr))

    def _prf(self, per_class, averaged, cls, average):
        if cls is not None:
            return self._class(per_class, cls)
        return float(averaged(self._ptr, _choice_average(average)))

    def precision(self, cls=None, average="macro"):
        """Precision of class `cls`, or averaged over the classes that
        occur ("macro", "micro", "weighted"), as scikit-learn with
        zero_division=0."""
        return self._prf(lib.nn_confusion_precision,
                         lib.nn_confusion_precision_avg, cls, average)

    def recall(self, cls=None, average="macro"):
        return self._prf(lib.nn_confusion_recall,
                         lib.nn_confusion_recall_avg, cls, average)

    def f1(self, cls=None, average="macro"):
        return self._prf(lib.nn_confusion_f1, lib.nn_confusion_f1_avg, cls,
                         average)

    def summary(self):
        """Every metric as a dict (what Model.evaluate_segmentation
        returns, without the loss)."""
        k = self.classes
        return dict(iou=self.mean_iou(1), mean_iou=self.mean_iou(0),
                    dice=self.mean_dice(1), mean_dice=self.mean_dice(0),
                    pixel_accuracy=self.pixel_accuracy(),
                    class_iou=[self.iou(c) for c in range(k)],
                    class_dice=[self.dice(c) for c in range(k)],
                    confusion=self.matrix)

    def __repr__(self):
        if not self._h:
            return "<libnn.ConfusionMatrix closed>"
        return (f"<libnn.ConfusionMatrix {self.classes} classes, mean IoU "
                f"{self.mean_iou():.4f}>")


_AVERAGES = {"macro": _lib.AVERAGE_MACRO, "micro": _lib.AVERAGE_MICRO,
             "weighted": _lib.AVERAGE_WEIGHTED}


def _choice_average(average):
    if average not in _AVERAGES:
        raise ValueError(f"average: unknown value {average!r} (one of "
                         f"{', '.join(map(repr, _AVERAGES))})")
    return _AVERAGES[average]


def report_dict(r):
    """An nn_binary_report as a dict."""
    return {k: (int(getattr(r, k)) if k in ("tp", "fp", "tn", "fn")
                else float(getattr(r, k)))
            for k, _ in _lib.nn_binary_report._fields_ if k != "size"}


def _new_report():
    return _lib.make_opts(_lib.nn_binary_report)


class Curve(_Owner):
    """The ROC and precision-recall curves of scores against binary labels
    (1: positive, the defective part), one point per distinct score, the
    thresholds decreasing; a sample is positive where score >= threshold.

    >>> c = Curve(y_true, y_score)
    >>> c.roc_auc, c.average_precision
    >>> c.threshold_for_recall(0.99)      # no defective part shipped
    >>> c.threshold_for_precision(0.9)    # few good parts rejected
    """

    def __init__(self, y_true=None, y_score=None, _ptr=None):
        if _ptr is None:
            y = np.ascontiguousarray(y_true, dtype=np.float32).ravel()
            s = np.ascontiguousarray(y_score, dtype=np.float32).ravel()
            if y.shape != s.shape:
                raise ValueError(f"{y.size} labels for {s.size} scores")
            fp = ctypes.POINTER(ctypes.c_float)
            _ptr = lib.nn_curve_create(s.ctypes.data_as(fp),
                                       y.ctypes.data_as(fp), s.size)
        self._h = Handle(_ptr, lib.nn_curve_free)
        self._what = "curve"


    @property
    def size(self):
        """The number of distinct thresholds."""
        return int(lib.nn_curve_size(self._ptr))

    @property
    def positives(self):
        return int(lib.nn_curve_positives(self._ptr))

    @property
    def negatives(self):
        return int(lib.nn_curve_negatives(self._ptr))

    def _arrays(self, fn, n):
        a, b = np.empty(n), np.empty(n)
        t = np.empty(n, np.float32)
        dp = ctypes.POINTER(ctypes.c_double)
        fn(self._ptr, a.ctypes.data_as(dp), b.ctypes.data_as(dp),
           t.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), n)
        return a, b, t

    def roc(self):
        """(fpr, tpr, thresholds): K + 1 points from (0, 0) at +inf."""
        return self._arrays(lib.nn_curve_roc, self.size + 1)

    def pr(self):
        """(precision, recall, thresholds): K points, thresholds
        decreasing (precision_recall_curve reverses them and appends
        precision 1, recall 0)."""
        return self._arrays(lib.nn_curve_pr, self.size)

    @property
    def roc_auc(self):
        """ROC AUC (trapezoids); NaN unless both labels occur."""
        return float(lib.nn_curve_roc_auc(self._ptr))

    @property
    def average_precision(self):
        """Average precision (steps); NaN without positives."""
        return float(lib.nn_curve_average_precision(self._ptr))

    def report(self, threshold=0.5):
        """The decision at a threshold: tp, fp, tn, fn, precision, recall,
        f1, accuracy, roc_auc, average_precision."""
        r = _new_report()
        lib.nn_curve_report(self._ptr, float(threshold), ctypes.byref(r))
        return report_dict(r)

    def threshold_for_recall(self, target):
        """The largest threshold whose recall >= target, and the decision
        there (report's dict)."""
        r = _new_report()
        lib.nn_curve_threshold_for_recall(self._ptr, float(target),
                                          ctypes.byref(r))
        return report_dict(r)

    def threshold_for_precision(self, target):
        """The smallest threshold whose precision >= target; InvalidArgument
        when none reaches it."""
        r = _new_report()
        lib.nn_curve_threshold_for_precision(self._ptr, float(target),
                                             ctypes.byref(r))
        return report_dict(r)

    def __repr__(self):
        if not self._h:
            return "<libnn.Curve closed>"
        return (f"<libnn.Curve {self.size} thresholds, {self.positives} "
                f"positive, {self.negatives} negative>")


def roc_curve(y_true, y_score):
    """scikit-learn's roc_curve(y_true, y_score, drop_intermediate=False):
    (fpr, tpr, thresholds), thresholds[0] = inf."""
    with Curve(y_true, y_score) as c:
        return c.roc()


def precision_recall_curve(y_true, y_score):
    """scikit-learn's precision_recall_curve: precision and recall with
    increasing thresholds, then the point (precision 1, recall 0)."""
    with Curve(y_true, y_score) as c:
        p, r, t = c.pr()
    return np.r_[p[::-1], 1.0], np.r_[r[::-1], 0.0], t[::-1].copy()


def _checked(value, name):
    if np.isnan(value):
        raise errors.InvalidArgument(_lib.last_error(), None, name)
    return value


def roc_auc_score(y_true, y_score):
    """ROC AUC; InvalidArgument unless both labels occur."""
    with Curve(y_true, y_score) as c:
        return _checked(c.roc_auc, "nn_curve_roc_auc")


def average_precision_score(y_true, y_score):
    """Average precision (scikit-learn's, not the trapezoid area);
    InvalidArgument without positives."""
    with Curve(y_true, y_score) as c:
        return _checked(c.average_precision, "nn_curve_average_precision")

"""ConfusionMatrix: the thresholded segmentation metrics of libnn's
nn_confusion (Keras MeanIoU semantics; docs/losses.md)."""

import numpy as np

from . import _lib, errors
from ._lib import lib
from .tensor import Handle, wrap


class ConfusionMatrix:
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

    @property
    def _ptr(self):
        if not self._h:
            raise errors.StateError("the confusion matrix is closed")
        return self._h.ptr

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

    def close(self):
        h, self._h = self._h, Handle(None, None)
        h.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        if not self._h:
            return "<libnn.ConfusionMatrix closed>"
        return (f"<libnn.ConfusionMatrix {self.classes} classes, mean IoU "
                f"{self.mean_iou():.4f}>")

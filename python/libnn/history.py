"""What Model.fit returns and prints, as Keras does: a History object and
the progress lines of ``verbose``."""

import math
import sys
import time
from collections.abc import Mapping

from . import errors


class History(Mapping):
    """What fit returns, as Keras' History:

    * ``history``: a dict of lists, one value per epoch: ``loss`` and
      ``accuracy``, ``val_loss`` and ``val_accuracy`` with validation data,
      then the others fit recorded (``seconds`` always; the segmentation
      and gradient metrics when asked for);
    * ``epoch``: the epoch indices, ``[0, 1, ...]``;
    * ``params``: ``{"epochs", "steps", "verbose"}`` of the call;
    * ``model``: the model trained.

    It also reads as the dict itself (``h["loss"]``, ``"val_loss" in h``,
    ``len(h)``, ``h.items()``, ``h == {...}``), which is what fit returned
    before, so code written for that keeps working.
    """

    def __init__(self, history, params, model):
        self.history = history
        self.params = params
        self.model = model
        n = len(next(iter(history.values()), []))
        self.epoch = list(range(n))

    def __getitem__(self, key):
        return self.history[key]

    def __iter__(self):
        return iter(self.history)

    def __len__(self):
        return len(self.history)

    def __repr__(self):
        return (f"<libnn.History {len(self.epoch)} epoch(s): "
                f"{', '.join(self.history)}>")


def verbosity(verbose):
    """fit's verbose argument as 0, 1 or 2 ("auto" is 1, as in Keras)."""
    if verbose == "auto":
        return 1
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise errors.invalid(f"verbose must be 0 (silent), 1 (a progress "
                             f"bar on a terminal), 2 (one line per epoch) "
                             f"or 'auto', got {verbose!r}")
    return int(verbose)


def _value(v):
    # Keras' Progbar: 4 decimals, or 4 significant digits for tiny values.
    return f"{v:.4f}" if abs(v) > 1e-3 else f"{v:.4e}"


def _duration(s):
    if s >= 3600:
        return f"{int(s) // 3600}:{int(s) % 3600 // 60:02d}:{int(s) % 60:02d}"
    if s >= 60:
        return f"{int(s) // 60}:{int(s) % 60:02d}"
    return f"{s:.0f}s"


def _per_step(s):
    if s >= 1:
        return f"{s:.0f}s/step"
    if s >= 1e-3:
        return f"{s * 1e3:.0f}ms/step"
    return f"{s * 1e6:.0f}us/step"


# The running metrics of a Progress, in the order Keras prints them.
_TRAIN = ("loss", "accuracy", "iou", "mean_iou")
_VAL = ("val_loss", "val_accuracy", "val_iou", "val_mean_iou")


class ProgressPrinter:
    """Keras' progress output for fit: "Epoch 1/10", then per epoch
    "N/N - 5s - loss: ... - accuracy: ... - val_loss: ..." (verbose 2, or
    1 when stdout is not a terminal), or a bar that fills as the batches
    go (verbose 1 on a terminal) and ends as that line with the time per
    step."""

    WIDTH = 30
    INTERVAL = 0.05  # seconds between redraws of the bar

    def __init__(self, verbose, epochs, stream=None):
        self.stream = stream if stream is not None else sys.stdout
        isatty = getattr(self.stream, "isatty", None)
        self.bar = verbose == 1 and bool(isatty and isatty())
        self.epochs = epochs
        self.started = -1  # the last epoch whose header is out
        self.shown = 0     # length of the bar line on screen
        self.drawn = 0.0   # when the bar was drawn last

    def _write(self, text):
        self.stream.write(text)
        self.stream.flush()

    def _start(self, p):
        # At the epoch's first report, so that a call refused before any
        # training prints nothing.
        if p.epoch != self.started:
            self.started = p.epoch
            self._write(f"Epoch {p.epoch + 1}/{self.epochs}\n")

    def _metrics(self, p, names):
        parts = []
        for k in names:
            v = getattr(p, k)
            if not math.isnan(v):
                parts.append(f" - {k}: {_value(v)}")
        return "".join(parts)

    def _bar(self, done, total):
        filled = int(self.WIDTH * done / total)
        head = ">" if done < total else "="
        body = "=" * (filled - 1) + head if filled else ""
        return "[" + body + "." * (self.WIDTH - filled) + "]"

    def _show(self, line):
        pad = " " * max(self.shown - len(line), 0)
        self._write("\r" + line + pad)
        self.shown = len(line)

    def batch(self, p):
        self._start(p)
        if not self.bar or p.batch >= p.batches:
            return
        now = time.monotonic()
        if now - self.drawn < self.INTERVAL:
            return
        self.drawn = now
        width = len(str(p.batches))
        eta = p.elapsed_s / p.batch * (p.batches - p.batch)
        self._show(f"{p.batch:{width}d}/{p.batches} "
                   f"{self._bar(p.batch, p.batches)} - ETA: "
                   f"{_duration(eta)}{self._metrics(p, _TRAIN)}")

    def epoch_end(self, p):
        self._start(p)
        n = p.batches
        metrics = self._metrics(p, _TRAIN) + self._metrics(p, _VAL)
        if self.bar:
            step = _per_step(p.elapsed_s / max(n, 1))
            self._show(f"{n}/{n} {self._bar(n, n)} - "
                       f"{_duration(p.elapsed_s)} {step}{metrics}")
            self._write("\n")
            self.shown = 0
        else:
            self._write(f"{n}/{n} - {_duration(p.elapsed_s)}{metrics}\n")

#!/usr/bin/python3
"""Q3a from Python: the assignment's simple CNN trained through the libnn
binding (the Python twin of examples/cifar_cnn.c).

    Conv2D(32, 3x3, relu) - MaxPooling2D(2) - Conv2D(64, 3x3, relu) -
    MaxPooling2D(2) - Flatten - Dropout(0.5) - Dense(10, softmax)

Categorical cross-entropy, Adam, batch 128, validation on the test split.
Fashion-MNIST (Debian's dataset-fashion-mnist, read by the library's
nn_load_idx) by default; CIFAR-10's binary batches with --data DIR.

    /usr/bin/python3 examples/python/cifar_cnn.py --epochs 1 --train 5000
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))

import libnn  # noqa: E402

FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="CIFAR-10 binary directory (default: "
                   "Fashion-MNIST)")
    p.add_argument("--fashion", default=FASHION_DIR,
                   help="Fashion-MNIST directory (%(default)s)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", "--batch", dest="batch", type=int,
                   default=128)
    p.add_argument("--train", type=int, default=0,
                   help="use the first N training images (0: all)")
    p.add_argument("--test", type=int, default=0,
                   help="use the first N test images (0: all)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--history", help="write the history as CSV")
    p.add_argument("--save", help="save the trained model")
    return p.parse_args()


def load(args):
    """(x_train, y_train, x_test, y_test, name) with one-hot labels."""
    if args.data:
        train = [os.path.join(args.data, f"data_batch_{i}.bin")
                 for i in range(1, 6)]
        x_tr, l_tr = libnn.load_cifar10(train)
        x_te, l_te = libnn.load_cifar10(
            [os.path.join(args.data, "test_batch.bin")])
        name = "CIFAR-10"
    else:
        d = args.fashion
        x_tr = libnn.load_idx(os.path.join(d, "train-images-idx3-ubyte.gz"))
        l_tr = libnn.load_idx(os.path.join(d, "train-labels-idx1-ubyte.gz"),
                              scale=False)
        x_te = libnn.load_idx(os.path.join(d, "t10k-images-idx3-ubyte.gz"))
        l_te = libnn.load_idx(os.path.join(d, "t10k-labels-idx1-ubyte.gz"),
                              scale=False)
        name = "Fashion-MNIST"
    # Leading-axis slices of C-contiguous arrays stay contiguous views.
    if args.train > 0:
        x_tr, l_tr = x_tr[:args.train], l_tr[:args.train]
    if args.test > 0:
        x_te, l_te = x_te[:args.test], l_te[:args.test]
    return (x_tr, libnn.one_hot(l_tr, 10), x_te, libnn.one_hot(l_te, 10),
            name)


def build_cnn(input_shape, seed):
    m = libnn.Model(seed)
    x = m.input(input_shape)
    x = m.conv2d(x, 32, 3, activation="relu")
    x = m.maxpool2d(x, 2)
    x = m.conv2d(x, 64, 3, activation="relu")
    x = m.maxpool2d(x, 2)
    x = m.flatten(x)
    x = m.dropout(x, 0.5)
    m.dense(x, 10, activation="softmax")
    m.compile(libnn.Adam(), "categorical_crossentropy")
    return m


def progress(p):
    """One bar on a terminal, one line per epoch otherwise."""
    tty = sys.stdout.isatty()
    if p.event == "batch_end":
        if tty:
            done = p.batch * 30 // p.batches
            print(f"\rEpoch {p.epoch + 1}/{p.epochs} [{'=' * done:<30}] "
                  f"{p.batch}/{p.batches} {p.images_per_s:6.0f} img/s "
                  f"loss {p.loss:.4f} acc {p.accuracy:.4f} ", end="",
                  flush=True)
        return False
    if tty:
        print()
    print(f"Epoch {p.epoch + 1}/{p.epochs} - {p.elapsed_s:.1f}s - "
          f"{p.images_per_s:.0f} img/s - loss: {p.loss:.4f} - accuracy: "
          f"{p.accuracy:.4f} - val_loss: {p.val_loss:.4f} - val_accuracy: "
          f"{p.val_accuracy:.4f}", flush=True)
    return False


def write_history(path, h):
    with open(path, "w") as f:
        f.write("epoch,loss,accuracy,val_loss,val_accuracy,seconds\n")
        for e in range(len(h["loss"])):
            f.write(f"{e + 1},{h['loss'][e]:.6g},{h['accuracy'][e]:.6g},"
                    f"{h['val_loss'][e]:.6g},{h['val_accuracy'][e]:.6g},"
                    f"{h['seconds'][e]:.3f}\n")


def main():
    args = parse_args()
    x_tr, y_tr, x_te, y_te, name = load(args)
    print(f"libnn {libnn.version()} ({libnn.library_path}) - {name}: "
          f"{len(x_tr)} training and {len(x_te)} test images of "
          f"{'x'.join(map(str, x_tr.shape[1:]))}")
    with build_cnn(x_tr.shape[1:], args.seed) as m:
        print(m.summary())
        t0 = time.perf_counter()
        h = m.fit(x_tr, y_tr, epochs=args.epochs, batch_size=args.batch,
                  validation_data=(x_te, y_te), callback=progress,
                  verbose=0)  # progress() prints the epochs
        loss, acc = m.evaluate(x_te, y_te, batch_size=256)
        print(f"Test loss: {loss:.4f} - test accuracy: {acc:.4f} "
              f"({time.perf_counter() - t0:.1f}s)")
        if args.history:
            write_history(args.history, h)
            print(f"History written to {args.history}")
        if args.save:
            m.save(args.save)
            print(f"Model saved to {args.save}")


if __name__ == "__main__":
    try:
        main()
    except libnn.Error as e:
        sys.exit(f"error: {e}")

"""The plotting tools of tools/ on small synthetic inputs: the mean and
range over seeds (tools/seed_spread.py), the Q3c table and figure of
tools/plot_history.py (what `make curves` prints and commits), and that
tools/plot_residual.py (`make residual-experiment`) still draws its three
figures from the shared module. No libnn needed.
"""

import csv
import os
import sys

import pytest

TOOLS = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..",
                                     "tools"))
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)

import plot_history  # noqa: E402
import plot_residual  # noqa: E402
import seed_spread  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Three seeds of a two-epoch run: last-epoch train and validation
# accuracy, train and validation loss, and the test accuracy the program
# printed (on purpose not equal to the validation accuracy: the table must
# take it from the program's output).
SEEDS = {"42": (0.80, 0.70, 0.50, 0.90, 0.7012),
         "1": (0.85, 0.75, 0.40, 0.70, 0.7534),
         "2": (0.90, 0.83, 0.30, 0.50, 0.8301)}


def write_history(path, acc, vacc, loss, vloss):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "loss", "accuracy", "val_loss", "val_accuracy",
                    "seconds"])
        w.writerow([1, 2.0, 0.3, 2.1, 0.25, 1.5])
        w.writerow([2, loss, acc, vloss, vacc, 1.5])


def write_runs(tmp_path, with_logs=True):
    for seed, (acc, vacc, loss, vloss, test) in SEEDS.items():
        write_history(tmp_path / f"cnn_seed{seed}.csv", acc, vacc, loss,
                      vloss)
        if with_logs:
            (tmp_path / f"cnn_seed{seed}.log").write_text(
                "Epoch 2/2 - 1.5s - loss: 0.5000 - accuracy: 0.8000\n"
                f"Test loss: 0.9000 - test accuracy: {test:.4f} "
                "(10000 images)\nHistory written to somewhere\n")
    return str(tmp_path / "cnn_seed{seed}.csv")


def run_tool(capsys, *argv):
    rc = plot_history.main(list(argv))
    return rc, capsys.readouterr().out


def table_row(out, label):
    rows = [line for line in out.splitlines()
            if line.startswith(f"| {label} |")]
    assert rows, f"no row for {label} in:\n{out}"
    return [c.strip() for c in rows[0].strip("|").split("|")]


def test_mean_range_and_spread():
    assert seed_spread.mean_range([3.0, 1.0, 2.0]) == (2.0, 1.0, 3.0)
    mean, lo, hi = seed_spread.spread([[1.0, 4.0, 9.0], [3.0, 2.0]])
    assert (mean, lo, hi) == ([2.0, 3.0], [1.0, 2.0], [3.0, 4.0])
    assert seed_spread.seeds_caption(1) == "line: mean of 1 seed"
    assert seed_spread.seeds_caption(3) == \
        "line: mean of 3 seeds; band: lowest to highest seed"


def test_band_shades_the_range_of_several_seeds():
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    seed_spread.band(ax, [1, 2], [[1.0, 2.0]], "red", "one")
    assert len(ax.collections) == 0  # one seed: a line, no band
    seed_spread.band(ax, [1, 2], [[1.0, 2.0], [3.0, 5.0]], "red", "two")
    assert len(ax.collections) == 1
    path = ax.collections[0].get_paths()[0]
    ys = sorted({float(y) for y in path.vertices[:, 1]})
    assert ys[0] == 1.0 and ys[-1] == 5.0  # lowest to highest seed
    assert list(ax.lines[-1].get_ydata()) == [2.0, 3.5]  # the mean
    plt.close(fig)


def test_history_curves_are_bands(tmp_path):
    import matplotlib.pyplot as plt
    write_runs(tmp_path)
    run = plot_history.read_run(str(tmp_path / "cnn_seed{seed}.csv"),
                                list(SEEDS))
    fig, ax = plt.subplots()
    plot_history.draw(ax, run, "accuracy", "blue")
    assert len(ax.collections) == 2  # train and validation
    assert list(ax.lines[0].get_ydata()) == pytest.approx([0.3, 0.85])
    plt.close(fig)


def test_seeds_table_and_figure(tmp_path, capsys):
    pattern = write_runs(tmp_path)
    out_png = tmp_path / "fig" / "curves.png"
    rc, out = run_tool(capsys, "--seeds", *SEEDS, "--labels", "Q3a",
                       "--started", "0", "-o", str(out_png), pattern)
    assert rc == 0
    # run, train acc, val acc, train - val, train loss, val loss, test acc
    assert table_row(out, "Q3a") == [
        "Q3a", "0.850 [0.800, 0.900]", "0.760 [0.700, 0.830]",
        "+0.090 [+0.070, +0.100]", "0.400 [0.300, 0.500]",
        "0.700 [0.500, 0.900]", "0.7616 [0.7012, 0.8301]"]
    assert "3 seeds (42, 1, 2), 2 epochs" in out
    assert "wall time" in out
    # one row per seed as well
    seed_rows = [line for line in out.splitlines()
                 if line.startswith("| Q3a | 1 |")]
    assert seed_rows and "0.7534" in seed_rows[0]
    assert out_png.read_bytes()[:8] == PNG_MAGIC
    summary = (tmp_path / "fig" / "summary.md").read_text()
    assert "| Q3a | 0.850 [0.800, 0.900] |" in summary


def test_without_logs_the_test_column_is_empty(tmp_path, capsys):
    pattern = write_runs(tmp_path, with_logs=False)
    rc, out = run_tool(capsys, "--seeds", "42", "2", "--labels", "Q3a",
                       "-o", str(tmp_path / "c.png"), pattern)
    assert rc == 0
    row = table_row(out, "Q3a")
    assert row[1] == "0.850 [0.800, 0.900]"
    assert row[-1] == "-"


def test_one_history_gives_plain_numbers(tmp_path, capsys):
    write_runs(tmp_path)
    rc, out = run_tool(capsys, str(tmp_path / "cnn_seed1.csv"),
                       "--labels", "one", "-o", str(tmp_path / "c.png"))
    assert rc == 0
    assert table_row(out, "one")[1:] == ["0.850", "0.750", "+0.100",
                                         "0.400", "0.700", "0.7534"]
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG_MAGIC


def test_seeds_need_a_pattern(tmp_path, capsys):
    write_runs(tmp_path)
    with pytest.raises(SystemExit) as e:
        plot_history.main([str(tmp_path / "cnn_seed1.csv"), "--seeds", "1"])
    assert e.value.code == 2
    assert "{seed}" in capsys.readouterr().err


def test_missing_seed_is_an_error(tmp_path, capsys):
    pattern = write_runs(tmp_path)
    rc = plot_history.main([pattern, "--seeds", "42", "7",
                            "-o", str(tmp_path / "c.png")])
    assert rc == 1
    assert "cnn_seed7.csv" in capsys.readouterr().err


def write_residual(out):
    """A residual_vs_plain output of two models, two seeds, four steps."""
    with open(out / "curves.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "seed", "step", "epoch", "lr", "loss",
                    "train_error", "grad_norm", "health"])
        for model in ("plain20", "resnet20"):
            for seed in ("1", "2"):
                for step in range(1, 5):
                    lr = 0.05 if step < 3 else 0.005
                    w.writerow([model, seed, step, 1, lr, 1.0 / step,
                                0.5 / step + int(seed) * 0.01, 2.0 / step,
                                "OK"])
    with open(out / "profiles.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "seed", "phase", "step", "depth", "layer",
                    "type", "grad_norm"])
        for model in ("plain20", "resnet20"):
            for seed in ("1", "2"):
                for phase in ("init", "epoch1"):
                    for depth in (1, 2, 3):
                        w.writerow([model, seed, phase, 0, depth,
                                    f"conv2d_{depth}", "Conv2D",
                                    0.1 * depth * int(seed)])


def test_plot_residual_draws_its_figures(tmp_path, monkeypatch, capsys):
    write_residual(tmp_path)
    monkeypatch.setattr(sys, "argv", ["plot_residual.py", str(tmp_path)])
    plot_residual.main()
    assert "wrote" in capsys.readouterr().out
    for name in ("training_error.png", "grad_profile.png", "grad_norm.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC

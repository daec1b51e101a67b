"""Mean and range over seeds, and how the plots draw them: the one home
of what tools/plot_residual.py (Q1) and tools/plot_history.py (Q3c) share.

A figure from several seeds shows the mean as a line and the range (lowest
to highest seed) as a shaded band; a table gives mean [min, max].
"""


def mean_range(values):
    """(mean, min, max) of a list of numbers."""
    return sum(values) / len(values), min(values), max(values)


def spread(series):
    """Mean, min and max at each index over the seeds' series (cut to the
    shortest)."""
    n = min(len(s) for s in series)
    cols = [mean_range([s[i] for s in series]) for i in range(n)]
    return ([c[0] for c in cols], [c[1] for c in cols],
            [c[2] for c in cols])


def band(ax, xs, series, color, label, log=False, **style):
    """The mean of the series as a line (style: matplotlib's line keywords)
    and, with more than one series, their range as a band."""
    mean, lo, hi = spread(series)
    xs = xs[:len(mean)]
    (ax.semilogy if log else ax.plot)(xs, mean, color=color, label=label,
                                      **style)
    if len(series) > 1:
        ax.fill_between(xs, lo, hi, color=color, alpha=0.2, lw=0)


def seeds_caption(n):
    """Says what the line and the band are, for n seeds."""
    return (f"line: mean of {n} seed{'s' if n != 1 else ''}"
            + ("; band: lowest to highest seed" if n > 1 else ""))

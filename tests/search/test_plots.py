"""The parent run's learning-curve plot (issue 15 item 2): the legend's colours are the lines' colours (one per
model), the best full-budget trial is drawn thick and labelled, and a loss spanning decades gets a log scale."""
from __future__ import annotations

import matplotlib
import pandas as pd

from search.sweep import learning_curve_figure

matplotlib.use("Agg")


def row(model, losses, *, epoch=None, diverged=0):
    n = len(losses)
    return {"config": {"model": model, "lr": 1e-3}, "error": False, "checkpoint": None,
            "metrics": {"epoch": epoch or n, "val_loss": losses[-1], "best_val_loss": min(losses), "diverged": diverged},
            "history": pd.DataFrame({"epoch": list(range(1, n + 1)), "val_loss": losses})}


def test_legend_colours_are_the_models_and_the_best_trial_is_marked():
    import matplotlib.colors as mc
    import matplotlib.pyplot as plt

    rows = [row("rnn", [1.0, 0.9, 0.8]), row("lstm", [1.0, 0.5, 0.3]), row("lstm", [1.0, 0.6, 0.4]),
            row("rnn", [1.0, 0.95]),  # stopped early: never the best, whatever its value
            row("lstm", [0.9, 0.2], epoch=2)]
    fig = learning_curve_figure(rows, "val_loss", budget=3, mode="min")
    ax = fig.axes[0]
    legend = ax.get_legend()
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels[:2] == ["rnn", "lstm"] and labels[2] == "best: lstm (0.3)", labels
    by_label = dict(zip(labels, legend.legend_handles))
    for line in ax.get_lines():
        model = line.get_label().removeprefix("best: ").split(" ")[0]
        assert mc.same_color(line.get_color(), by_label[model].get_color()), (line.get_label(), line.get_color())
    best = [ln for ln in ax.get_lines() if ln.get_label().startswith("best")]
    assert len(best) == 1 and list(best[0].get_ydata()) == [1.0, 0.5, 0.3] and best[0].get_linewidth() > 2
    assert len(ax.get_lines()) == len(rows)
    assert ax.get_yscale() == "linear"
    assert legend.get_bbox_to_anchor().x0 > ax.get_window_extent().x1 - 1, "legend to the right of the plot"
    plt.close(fig)


def test_log_scale_when_the_loss_spans_decades():
    import matplotlib.pyplot as plt

    fig = learning_curve_figure([row("lstm", [2.0, 0.05, 0.01])], "val_loss", budget=3)
    assert fig.axes[0].get_yscale() == "log"
    plt.close(fig)

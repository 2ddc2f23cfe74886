"""The digest chart: daily volume by sentiment (stacked bars) with net sentiment as a line, as PNG.

Uses matplotlib's object API with the Agg canvas (no pyplot, no global state), so it is safe to call
from worker threads; matplotlib is imported on first use because importing it is slow.
"""

from __future__ import annotations

import io

from alerts.digest import BrandDigest

__all__ = ["COLORS", "render_chart_png"]

#: Colour-blind-safe palette shared with the HTML report.
COLORS = {
    "positive": "#1a9850",
    "neutral": "#bdbdbd",
    "negative": "#d73027",
    "unscored": "#e8e8e8",
    "net": "#253494",
}


def render_chart_png(
    digest: BrandDigest, *, width: float = 8.0, height: float = 3.6, dpi: int = 110
) -> bytes:
    """A PNG of the brand's daily mentions by sentiment and its net sentiment over the period."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    days = [p.day for p in digest.trend]
    x = list(range(len(days)))
    bottom = [0] * len(days)
    for label in ("negative", "neutral", "positive", "unscored"):
        values = [getattr(p.sentiment, label) for p in digest.trend]
        if not any(values):
            continue
        ax.bar(x, values, bottom=bottom, color=COLORS[label], label=label, width=0.75, zorder=2)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_xticks(
        x, [f"{d:%a}\n{d.day} {d:%b}" for d in days] if len(days) <= 14 else [f"{d:%d-%m}" for d in days]
    )
    if len(days) > 14:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=12, integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("mentions per day")
    ax.grid(axis="y", color="#eeeeee", zorder=0)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.set_title(f"{digest.brand} — {digest.period.label}", loc="left", fontsize=11)
    if digest.volume == 0:
        ax.set_ylim(0, 1)
        ax.text(
            0.5,
            0.5,
            "No mentions in this period",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color="#666666",
        )
    else:
        net = ax.twinx()
        points = [(i, p.net) for i, p in zip(x, digest.trend, strict=True) if p.net is not None]
        if points:
            net.plot(
                [i for i, _ in points],
                [v for _, v in points],
                color=COLORS["net"],
                marker="o",
                linewidth=2,
                label="net sentiment",
                zorder=3,
            )
        net.axhline(0, color=COLORS["net"], linewidth=0.6, linestyle=":")
        net.set_ylim(-1.05, 1.05)
        net.yaxis.set_major_formatter(PercentFormatter(1.0))
        net.set_ylabel("net sentiment", color=COLORS["net"])
        net.spines["top"].set_visible(False)
        handles, labels = ax.get_legend_handles_labels()
        more_handles, more_labels = net.get_legend_handles_labels()
        fig.legend(
            handles + more_handles,
            labels + more_labels,
            loc="outside lower center",
            fontsize=8,
            frameon=False,
            ncols=5,
        )
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", facecolor="white", metadata={"Software": None})
    return buffer.getvalue()

"""matplotlib figures as PNG data URIs, so the HTML file carries them and opens with no network.

``matplotlib.figure.Figure`` is used directly (no pyplot): no global figure state, no GUI backend, nothing
left open between figures.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass

from matplotlib.figure import Figure

from jobs.report.aggregates import Histogram, LogBins

WIDTH, HEIGHT, DPI = 7.0, 3.4, 100
COLORS = ("#3b6ea8", "#e28b2d", "#4f9d69", "#b8463f", "#7d5ba6", "#8c6d3f", "#d174a8", "#777777")


@dataclass
class Png:
    uri: str
    width: int
    height: int
    alt: str


def _png(figure: Figure, alt: str) -> Png:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    width, height = (round(float(v)) for v in figure.get_size_inches() * DPI)
    return Png("data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"), width, height, alt)


def _figure(height: float = HEIGHT) -> tuple[Figure, object]:
    figure = Figure(figsize=(WIDTH, height))
    return figure, figure.add_subplot()


def bars(labels: Sequence[str], values: Sequence[float], title: str, ylabel: str, horizontal: bool = False,
         fmt: str = "{:,}") -> Png:
    figure, ax = _figure(max(HEIGHT, 0.28 * len(labels) + 1) if horizontal else HEIGHT)
    positions = range(len(labels))
    if horizontal:
        drawn = ax.barh(list(positions), values, color=COLORS[0])
        ax.set_yticks(list(positions), labels)
        ax.invert_yaxis()
        ax.set_xlabel(ylabel)
    else:
        drawn = ax.bar(list(positions), values, color=[COLORS[i % len(COLORS)] for i in positions])
        ax.set_xticks(list(positions), labels, rotation=20 if len(labels) > 4 else 0, ha="right"
                      if len(labels) > 4 else "center")
        ax.set_ylabel(ylabel)
    ax.bar_label(drawn, labels=[fmt.format(v) for v in values], fontsize=8, padding=2)
    ax.set_title(title)
    return _png(figure, title)


def histogram(hist: Histogram, title: str, xlabel: str, log_y: bool = False, stacked: bool = True) -> Png:
    figure, ax = _figure()
    widths = [hist.edges[i + 1] - hist.edges[i] for i in range(len(hist.edges) - 1)]
    bottom = [0] * len(widths)
    for index, (group, counts) in enumerate(hist.counts.items()):
        ax.bar(hist.edges[:-1], counts, width=widths, align="edge", bottom=bottom if stacked else None,
               color=COLORS[index % len(COLORS)], alpha=1.0 if stacked else 0.6, label=group or None,
               edgecolor="white", linewidth=0.3)
        if stacked:
            bottom = [b + c for b, c in zip(bottom, counts)]
    if any(group for group in hist.counts):
        ax.legend(fontsize=8)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("rows")
    ax.set_title(f"{title} ({hist.rows:,} values)")
    return _png(figure, title)


def bin_label(low: int) -> str:
    """``[low, 2·low)`` as the integers it holds."""
    return f"{low:,}" if low == 1 else f"{low:,}–{2 * low - 1:,}"


def log_bins(bins: LogBins, title: str, xlabel: str) -> Png:
    figure, ax = _figure()
    labels = [bin_label(low) for low in bins.lows]
    ax.bar(range(len(labels)), bins.counts, color=COLORS[0])
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count (log)")
    ax.set_title(f"{title} ({bins.values:,}; largest {bins.largest:,})")
    return _png(figure, title)


def lines(series: dict[str, tuple[Sequence[object], Sequence[float]]], title: str, ylabel: str) -> Png:
    """One line per key, x values (e.g. run start times) against y values."""
    figure, ax = _figure(HEIGHT + 0.6)
    for index, (name, (xs, ys)) in enumerate(sorted(series.items())):
        ax.plot(list(xs), list(ys), marker="o", markersize=3, color=COLORS[index % len(COLORS)], label=name)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("run started (UTC)")
    ax.set_title(title)
    figure.autofmt_xdate()
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(figure, title)


def fill(parts: Sequence[tuple[str, float]], budget: float, title: str) -> Png:
    """Bytes per part, their total and the budget as horizontal bars; a log axis when the fill is under 1 %,
    so a small fill stays visible next to its budget."""
    used = sum(size for _, size in parts)
    labels = [*(name for name, _ in parts), "total", "budget"]
    sizes = [*(size for _, size in parts), used, budget]
    figure, ax = _figure(max(1.8, 0.35 * len(labels) + 1))
    colors = [COLORS[0]] * len(parts) + [COLORS[1], "#444444"]
    drawn = ax.barh(range(len(labels)), sizes, color=colors)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.bar_label(drawn, labels=[f"{v:,.0f} B" for v in sizes], fontsize=8, padding=2)
    if budget and 0 < used < budget / 100:
        ax.set_xscale("log")
    ax.set_xlim(right=max(sizes) * (20 if ax.get_xscale() == "log" else 1.25))
    ax.set_xlabel("bytes")
    ax.set_title(f"{title}: {used / budget:.4%} of the budget" if budget else title)
    return _png(figure, title)

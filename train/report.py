"""edge-eval's HTML report: one self-contained file (inline CSS, SVG curves, images as data URIs)
that opens from disk on an offline machine: the metrics, the image ROC, the worst false alarms
and the missed defects with the station's overlay (edge.overlay)."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import cv2
import numpy as np

from edge.overlay import overlay

SHOWN = 8  # pictures per section
COLUMNS = [("images", "images", "d"), ("defective", "defective", "d"), ("image AUROC", "image_auroc", ".4f"),
           ("pixel AUROC", "pixel_auroc", ".4f"), ("AUPRO", "aupro", ".4f"), ("pixel F1", "pixel_f1", ".3f"),
           ("DR", "dr", ".3f"), ("FAR", "far", ".3f"), ("DR at FAR 5 %", "dr_at_far5", ".3f"), ("mIoU", "miou", ".3f")]


def _fmt(v, spec: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "absent"
    return format(v, spec)


def _png(picture: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(cv2.imencode(".png", picture)[1].tobytes()).decode()


def _roc_svg(scores: np.ndarray, labels: np.ndarray, auc: float) -> str:
    if labels.all() or not labels.any():
        return "<p>ROC: needs good and defective images.</p>"
    from .evaluate import roc_points
    fpr, tpr = roc_points(scores, labels)
    pts = " ".join(f"{20 + 200 * x:.1f},{220 - 200 * y:.1f}" for x, y in zip(fpr, tpr))
    return (f'<svg viewBox="0 0 240 240" width="260" height="260" role="img" aria-label="image ROC">'
            f'<rect x="20" y="20" width="200" height="200" fill="none" stroke="#999"/>'
            f'<line x1="20" y1="220" x2="220" y2="20" stroke="#bbb" stroke-dasharray="3"/>'
            f'<polyline points="{pts}" fill="none" stroke="#2563eb" stroke-width="2"/>'
            f'<text x="120" y="238" font-size="10" text-anchor="middle">false positive rate</text>'
            f'<text x="8" y="120" font-size="10" text-anchor="middle" transform="rotate(-90 8 120)">true positive rate</text>'
            f'<text x="210" y="210" font-size="11" text-anchor="end">AUROC {auc:.4f}</text></svg>')


def _cards(results, probability: bool) -> str:
    cards = []
    for r in results:
        _, picture = overlay(r.image, r.score_map, (), None, probability=probability, width=256, truth=r.truth)
        cards.append(f'<figure><img src="{_png(picture)}" alt="{html.escape(r.kind)}">'
                     f'<figcaption>{html.escape(r.kind)}: score {r.score:.4f}, {r.verdict}'
                     f'{" (" + html.escape(r.name) + ")" if r.name else ""}</figcaption></figure>')
    return '<div class="cards">' + "".join(cards) + "</div>" if cards else "<p>none</p>"


def write_report(results, m: dict, path: Path, title: str, probability: bool, threshold: float | None):
    from .evaluate import auroc
    labels = np.array([r.kind != "good" for r in results])
    scores = np.array([r.score for r in results])
    rows = "".join(f"<tr><th>{html.escape(k)}</th>" + "".join(f"<td>{_fmt(v.get(key), spec)}</td>" for _, key, spec in COLUMNS)
                   + "</tr>" for k, v in m.items())
    good = sorted((r for r in results if r.kind == "good"), key=lambda r: -r.score)
    false_alarms = [r for r in good if r.verdict == "NG"]
    defects = sorted((r for r in results if r.kind != "good"), key=lambda r: r.score)
    missed = [r for r in defects if r.verdict == "OK"]
    body = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:1.5em;color:#222}} table{{border-collapse:collapse}}
th,td{{padding:.2em .6em;border-bottom:1px solid #ddd;text-align:right}} th:first-child{{text-align:left}}
.cards{{display:flex;flex-wrap:wrap;gap:.8em}} figure{{margin:0;font-size:.85em;width:256px}} img{{display:block;width:256px}}
.note{{color:#666;font-size:.9em}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="note">edge-eval through the station's own code (preprocessing, tiling, ONNX Runtime, detection, decision).
{len(results)} images, {int(labels.sum())} defective; image threshold {_fmt(threshold, '.6f')}.
Pictures: the anomaly map as heat over the frame, ground truth outlined in green.</p>
<h2>Metrics</h2><table><tr><th>set</th>{"".join(f"<th>{c}</th>" for c, _, _ in COLUMNS)}</tr>{rows}</table>
<h2>Image ROC</h2>{_roc_svg(scores, labels, auroc(scores, labels))}
<h2>Worst false alarms ({len(false_alarms)} good images judged NG; the {SHOWN} highest-scored good images)</h2>
{_cards(good[:SHOWN], probability)}
<h2>Missed defects ({len(missed)} defective images judged OK; the {SHOWN} lowest-scored defective images)</h2>
{_cards(defects[:SHOWN], probability)}
</body></html>
"""
    path.write_text(body)
    return path

"""``mtdata merge``: a pose dataset + a segment dataset -> one multitask dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mtdata.cli.app import app, check_report, console, progress_bar, user_errors, write_report


@app.command()
def merge(
    kpt: Annotated[Path, typer.Argument(readable=False, help="YOLO pose dataset: folder with data.yaml (kpt_shape), or the data.yaml.")],
    seg: Annotated[Path, typer.Argument(readable=False, help="YOLO segment dataset of the same images: folder with data.yaml, or the data.yaml.")],
    out: Annotated[Path, typer.Argument(readable=False, help="Output multitask dataset folder (must be empty unless --overwrite).")],
    iou: Annotated[float, typer.Option("--iou", min=0.01, max=1.0, help="Minimum box IoU to pair a pose with a mask.")] = 0.5,
    map_: Annotated[list[str] | None, typer.Option("--map", metavar="KPT=SEG", help="KPTCLASS=SEGCLASS (names or ids); repeatable. Default: equal names.")] = None,
    copy: Annotated[bool, typer.Option("--copy", help="Copy images instead of symlinking.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a non-empty OUT.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Fail (exit 2, nothing written) on any malformed label row.")] = False,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="Processes (default: one per core for large datasets).")] = None,
    report: Annotated[Path | None, typer.Option("--report", readable=False, help="Write the full report as JSON.")] = None,
) -> None:
    """Pair each pose with its mask one-to-one by box IoU and write a multitask dataset."""
    check_report(report)
    from mtdata.merge.dataset import merge_datasets

    with user_errors(), progress_bar("merging") as progress:
        result = merge_datasets(
            kpt, seg, out, iou=iou, mapping=map_, copy=copy, overwrite=overwrite, strict=strict,
            workers=workers, progress=progress,
        )
    render_merge(result)
    write_report(report, result.to_dict())


def render_merge(result) -> None:
    console.print(f"[bold]multitask[/] dataset written to [bold]{result.out}[/]", highlight=False, soft_wrap=True)
    pairs = ", ".join(f"{k} -> {' + '.join(v)}" for k, v in result.class_map.items())
    console.print(f"classes paired: {pairs}; --iou {result.iou_threshold:g}", highlight=False, soft_wrap=True)

    images = Table(title="images", show_edge=False)
    for column in ("split", "written", "in both", "SEG only", "KPT only (not written)"):
        images.add_column(column, justify="left" if column == "split" else "right")
    for split, c in result.images.items():
        images.add_row(split, str(c["written"]), str(c["both"]), str(c["seg_only"]), str(c["kpt_only"]))
    console.print(images)

    rows = Table(title="rows", show_edge=False)
    for column in ("class", "SEG rows", "with keypoints", "no keypoints", "KPT rows", "KPT unmatched"):
        rows.add_column(column, justify="left" if column == "class" else "right")
    keypoint_classes = set(result.keypoint_seg_classes())
    kpt_unmatched = {name: result.kpt_rows[name] - result.kpt_matched[name] for name in result.kpt_rows}
    from_kpt = {s: k for k, targets in result.class_map.items() for s in targets}
    for name in sorted(set(result.seg_rows) | keypoint_classes):
        has_kpt = name in keypoint_classes
        source = from_kpt.get(name)
        rows.add_row(
            name, str(result.seg_rows[name]),
            str(result.seg_matched[name]) if has_kpt else "-",
            str(result.seg_rows[name] - result.seg_matched[name]) if has_kpt else "-",
            f"{result.kpt_rows[source]} ({source})" if source and source != name else str(result.kpt_rows[source]) if source else "-",
            str(kpt_unmatched.get(source, 0)) if source else "-",
        )
    for name in sorted(set(result.kpt_rows) - set(result.class_map)):
        rows.add_row(f"{name} (KPT, unmapped)", "-", "-", "-", str(result.kpt_rows[name]), str(kpt_unmatched[name]))
    console.print(rows)

    if result.matched:
        hist = Table(title=f"IoU of the {result.matched} pairs (median {result.iou_quantiles([0.5])[0]:.3f})", show_edge=False)
        hist.add_column("IoU")
        hist.add_column("pairs", justify="right")
        hist.add_column("")
        peak = max(n for _, _, n in result.iou_histogram()) or 1
        for low, high, n in result.iou_histogram():
            hist.add_row(f"{low:.2f}-{high:.2f}", str(n), "#" * round(30 * n / peak))
        console.print(hist)

    unmatched = sum(result.kpt_unmatched.values())
    if unmatched:
        from mtdata.merge.report import UNMATCHED_REASONS

        reasons = ", ".join(f"{n} {r}" for r, n in sorted(result.kpt_unmatched.items()))
        console.print(f"[yellow]{unmatched} KPT row{'s' if unmatched > 1 else ''} found no mask[/] ({reasons}): listed in {result.unmatched_file}", highlight=False, soft_wrap=True)
        for reason in sorted(result.kpt_unmatched):
            console.print(f"  {reason}: {UNMATCHED_REASONS[reason]}", highlight=False, soft_wrap=True)
    for problem in result.problems[:10]:
        console.print(f"[yellow]malformed[/] {problem['file']}:{problem['line']}: {problem['message']} (row skipped)", highlight=False, soft_wrap=True)
    if len(result.problems) > 10:
        console.print(f"[yellow]... and {len(result.problems) - 10} more malformed rows (see --report)")
    for note in result.notes:
        console.print(f"[cyan]note:[/] {note}", highlight=False, soft_wrap=True)

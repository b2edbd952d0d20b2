"""``mtdata export``: a YOLO dataset split to one COCO JSON file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from mtdata.cli.app import app, check_report, console, progress_bar, user_errors, write_report


@app.command()
def export(
    data: Annotated[Path, typer.Argument(readable=False, help="data.yaml of a multitask, segment or pose dataset.")],
    out: Annotated[Path, typer.Argument(readable=False, help="COCO JSON file to write.")],
    split: Annotated[str, typer.Option(help="train | val | test")] = "val",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing OUT.")] = False,
    report: Annotated[Optional[Path], typer.Option("--report", readable=False, help="Write the full report as JSON.")] = None,
) -> None:
    """Export one split to COCO JSON (ids of the source COCO kept when the dataset was converted from one)."""
    check_report(report)
    from mtdata.export import export_coco

    with user_errors(), progress_bar("exporting") as progress:
        result = export_coco(data, out, split=split, overwrite=overwrite, progress=progress)
    render_export(result)
    write_report(report, result.to_dict())


def render_export(result) -> None:
    console.print(
        f"[bold]{result.split}[/] split of a {result.task} dataset written to [bold]{result.out}[/]: "
        f"{result.images} images, {result.annotations} annotations (ids: {result.ids_from})",
        highlight=False, soft_wrap=True,
    )
    table = Table(show_edge=False)
    table.add_column("category")
    table.add_column("annotations", justify="right")
    for name, count in sorted(result.annotations_per_class.items()):
        table.add_row(name, str(count))
    console.print(table)
    for line in result.rows_left_out[:10]:
        console.print(f"[yellow]row left out[/] {line}", highlight=False, soft_wrap=True)
    if len(result.rows_left_out) > 10:
        console.print(f"[yellow]... and {len(result.rows_left_out) - 10} more rows left out (see --report; mtdata check explains)")
    for line in result.images_unreadable[:10]:
        console.print(f"[yellow]image left out[/] {line}", highlight=False, soft_wrap=True)
    for note in result.notes:
        console.print(f"[cyan]note:[/] {note}", highlight=False, soft_wrap=True)

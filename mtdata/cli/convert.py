"""``mtdata convert`` and ``mtdata synth``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from mtdata.cli.app import app, check_report, console, progress_bar, user_errors, write_report

# Bounds on what synth allocates: an image is size x size x 3 bytes drawn in memory, one at a time.
SYNTH_MAX_IMAGES = 100_000
SYNTH_MAX_SIZE = 4096


@app.command()
def convert(
    annotations: Annotated[list[Path], typer.Argument(readable=False, help=(
        "COCO or Label Studio JSON files (each a split named from its stem), or Labelme folders or files (each folder a split)."))],
    out: Annotated[Path, typer.Argument(readable=False, help="Output dataset folder (created; must be empty unless --overwrite).")],
    images: Annotated[Optional[Path], typer.Option("--images", readable=False, help="Folder holding the images (file_name under it, under <split>/, or below).")] = None,
    task: Annotated[str, typer.Option(help="multitask | segment | pose")] = "multitask",
    split: Annotated[Optional[str], typer.Option(help="Split name for a single file.")] = None,
    classes: Annotated[Optional[str], typer.Option(help="Comma-separated category names to keep (Labelme/Label Studio: also their order).")] = None,
    copy: Annotated[bool, typer.Option("--copy", help="Copy images instead of symlinking.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a non-empty OUT.")] = False,
    crowd: Annotated[str, typer.Option(help="skip | include crowd annotations.")] = "skip",
    strict: Annotated[bool, typer.Option("--strict", help="Fail (exit 2, nothing written) on any invalid annotation.")] = False,
    follow_links: Annotated[bool, typer.Option(
        "--follow-links", help="Take images that are symlinks to files outside --images (refused by default: only for folders you trust).",
    )] = False,
    report: Annotated[Optional[Path], typer.Option("--report", readable=False, help="Write the full report as JSON.")] = None,
    source_format: Annotated[Optional[str], typer.Option("--from", help="coco | labelme | labelstudio (default: from the content).")] = None,
    keypoints: Annotated[Optional[list[str]], typer.Option("--keypoints", help=(
        "Labelme/Label Studio: the keypoint order, CLASS=kpt1,kpt2,... (repeatable) or a YAML file mapping classes to names."))] = None,
) -> None:
    """Convert COCO, Labelme or Label Studio JSON to YOLO multitask, segment or pose labels."""
    check_report(report)
    from mtdata.convert.tools import convert_annotations, parse_keypoint_order

    with user_errors(), progress_bar("converting") as progress:
        result = convert_annotations(
            annotations, out, source_format=source_format, keypoints=parse_keypoint_order(keypoints),
            images_dir=images, task=task, split=split,
            classes=[c.strip() for c in classes.split(",") if c.strip()] if classes else None,
            copy=copy, overwrite=overwrite, crowd=crowd, strict=strict, follow_links=follow_links, progress=progress,
        )
    render_convert(result)
    write_report(report, result.to_dict())


def render_convert(result) -> None:
    console.print(f"[bold]{result.task}[/] dataset written to [bold]{result.out}[/]", highlight=False)
    table = Table(show_edge=False)
    table.add_column("split")
    table.add_column("images", justify="right")
    for split, count in result.splits.items():
        table.add_row(split, str(count))
    console.print(table)
    rows = Table(show_edge=False)
    rows.add_column("class")
    rows.add_column("rows", justify="right")
    for name, count in sorted(result.rows_per_class.items()):
        rows.add_row(name, str(count))
    rows.add_row("[bold]total", f"[bold]{result.rows}")
    console.print(rows)
    skips = result.skip_counts()
    if skips:
        skipped = Table(title="left out", show_edge=False)
        skipped.add_column("reason")
        skipped.add_column("objects", justify="right")
        skipped.add_column("first annotation ids")
        for reason, count in sorted(skips.items()):
            ids = [str(s.annotation_id) for s in result.skipped if s.reason == reason][:5]
            skipped.add_row(reason, str(count), ", ".join(ids))
        console.print(skipped)
    for skip in result.invalid[:10]:
        console.print(f"[yellow]skipped[/] annotation {skip.annotation_id} (image {skip.image_id}): {escape(skip.message)}", highlight=False)
    if len(result.invalid) > 10:
        console.print(f"[yellow]... and {len(result.invalid) - 10} more invalid annotations (see --report)")
    if result.images_not_found:
        console.print(f"[yellow]{len(result.images_not_found)} images not found[/], e.g. {result.images_not_found[0]!r}", highlight=False)
    for refused in result.images_refused[:5]:
        console.print(f"[yellow]refused[/] image {refused['image_id']}: {escape(refused['why'])}", highlight=False)
    if len(result.images_refused) > 5:
        console.print(f"[yellow]... and {len(result.images_refused) - 5} more images refused (see --report)")
    render_tool_keypoints(result)
    if result.lossy_joins:
        first = result.lossy_joins[0]
        console.print(
            f"[yellow]{len(result.lossy_joins)} objects lose more than 5% of their mask as one outline[/] (overlapping parts "
            f"joined, or holes of an RLE mask filled): annotation {first['annotation_id']}: mask IoU {first['iou']:.2f}; all in --report", highlight=False,
        )
    for note in result.notes:
        console.print(f"[cyan]note:[/] {escape(note)}", highlight=False)


def render_tool_keypoints(result) -> None:
    """Labelme and Label Studio input: the points that joined no object (the notes say how many)."""
    for point in result.unmatched_keypoints[:5]:
        console.print(f"[yellow]keypoint joined no object[/] {escape(point['file'])} {escape(repr(point['label']))} at "
                      f"({point['x']:g}, {point['y']:g}): {escape(point['why'])}", highlight=False)


@app.command()
def synth(
    out: Annotated[Path, typer.Argument(readable=False, help="Folder for annotations/ and images/ (must be empty or absent).")],
    images: Annotated[int, typer.Option("--images", min=1, max=SYNTH_MAX_IMAGES, help="Training images (val gets a quarter, at least 4).")] = 64,
    size: Annotated[int, typer.Option("--size", min=32, max=SYNTH_MAX_SIZE, help="Image width and height in pixels.")] = 160,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite")] = False,
    video: Annotated[Optional[int], typer.Option("--video", min=1, max=SYNTH_MAX_IMAGES, help="Write a video of this many frames with tracking ground truth instead (video.avi, annotations/video.json).")] = None,
    objects: Annotated[int, typer.Option("--objects", min=1, max=16, help="--video: moving objects (stars and discs in turn).")] = 3,
    fps: Annotated[float, typer.Option("--fps", min=1, max=240, help="--video: frame rate.")] = 10.0,
    suffix: Annotated[str, typer.Option("--suffix", help="--video: .avi (MJPG) or .mp4 (MPEG-4).")] = ".avi",
    frames: Annotated[bool, typer.Option("--frames", help="--video: also write every frame as images/video/NNNNNN.jpg.")] = False,
) -> None:
    """Write a small synthetic COCO dataset (stars with 5 keypoints, discs without), or with --video a video
    of moving stars and discs with ground-truth track ids, masks and keypoints per frame."""
    from mtdata._runtime.output import atomic_output_dir

    if video is not None:
        from mtdata.synth_video import VideoSpec, write_synth_video

        with user_errors(), atomic_output_dir(out, overwrite) as work:
            spec = VideoSpec(frames=video, size=size, objects=objects, fps=fps, suffix=suffix)
            write_synth_video(work, spec, seed=seed, frames_as_images=frames)
        console.print(f"wrote {out}/video{suffix} ({video} frames, {objects} objects) and annotations/video.json")
        return
    from mtdata.synth import write_synth

    with user_errors(), atomic_output_dir(out, overwrite) as work:
        write_synth(work, images=images, size=size, seed=seed)
    console.print(f"wrote {out}/annotations/instances_train.json, instances_val.json and images/")

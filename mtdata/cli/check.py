"""``mtdata check``: lint a dataset before training; ``--fix`` writes a corrected copy."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from mtdata.cli.app import app, console, fail, progress_bar, user_errors

_STYLE = {"error": "red", "warning": "yellow", "info": "cyan"}


@app.command()
def check(
    data: Annotated[Path | None, typer.Argument(readable=False, help="The dataset's data.yaml.", show_default=False)] = None,
    split: Annotated[str | None, typer.Option("--split", help="Check one split: train, val or test.")] = None,
    format: Annotated[str, typer.Option("--format", help="text | json")] = "text",
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 on warnings.")] = False,
    fix: Annotated[Path | None, typer.Option("--fix", readable=False, help="Write a corrected copy to this new folder (never in place).")] = None,
    rules: Annotated[bool, typer.Option("--rules", help="List the rules and exit.")] = False,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="Processes for the per-file work (default: all CPUs).")] = None,
) -> None:
    """Find every defect of a YOLO dataset: images, rows, geometry, keypoints and data.yaml.

    Exit status: 0 no errors (warnings allowed), 1 warnings with --strict, 2 any error.
    """
    if format not in ("text", "json"):
        fail(f"--format must be text or json, found {format!r}")
    if rules:
        render_rules(format)
        return
    if data is None:
        fail("give the dataset's data.yaml (or --rules to list the rules)")
    from mtdata.check.dataset import check_dataset

    with user_errors():
        if fix is not None:  # before the check, which may take a while
            from mtdata._runtime.output import check_output_dir

            check_output_dir(fix, False, [data])
        with progress_bar("checking") as progress:
            result = check_dataset(data, split=split, workers=workers, progress=progress)
        fixed = None
        if fix is not None:
            from mtdata.check.fix import fix_dataset

            fixed = fix_dataset(data, fix, result=None if split else result)
    if format == "json":
        payload = result.to_dict()
        if fixed is not None:
            payload["summary"]["fix"] = {k: v for k, v in fixed.to_dict().items() if k != "changes"} | {"changes": len(fixed.changes)}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        render_findings(result)
        if fixed is not None:
            render_fix(fixed)
    raise typer.Exit(result.exit_code(strict))


def _shown(file: str) -> str:
    """A path relative to the working folder when it lies below it: shorter lines."""
    try:
        return os.path.relpath(file) if not os.path.relpath(file).startswith("..") else file
    except ValueError:
        return file


def render_findings(result) -> None:
    for f in result.findings:
        where = _shown(f.file) + (f":{f.line}" if f.line is not None else "")
        line = Text(where)
        line.append("  ")
        line.append(f.rule, style=_STYLE[f.severity.value])
        line.append(f"  {f.message}")
        console.print(line, soft_wrap=True, highlight=False)
    s = result.summary
    if s["rules"]:
        from mtdata.check.rules import RULES

        table = Table(title="findings by rule", show_edge=False)
        for column, justify in (("rule", "left"), ("severity", "left"), ("count", "right")):
            table.add_column(column, justify=justify, no_wrap=True)
        table.add_column("what it means")
        for rule, entry in s["rules"].items():
            table.add_row(rule, Text(entry["severity"], style=_STYLE[entry["severity"]]), str(entry["count"]), RULES[rule].summary)
        console.print(table)
    splits = ", ".join(f"{name} {v['images']}" for name, v in s["splits"].items())
    verdict = "[bold red]errors[/]" if s["errors"] else "[bold yellow]warnings[/]" if s["warnings"] else "[bold green]clean[/]"
    console.print(
        f"{verdict}: {s['errors']} errors, {s['warnings']} warnings, {s['info']} info in {s['images']} images "
        f"({splits}), {s['label_files']} label files, {s['rows']} rows; {s['unusable_images']} images unusable for training",
        highlight=False, soft_wrap=True,
    )
    if not s["rows_checked"]:
        console.print("[yellow]label rows were not checked: data.yaml does not define a valid row layout[/]")


def render_fix(report) -> None:
    console.print(
        f"corrected copy written to [bold]{report.out}[/]: {len(report.changes)} changes in {report.files_changed} label files "
        f"(log: {report.out / 'fix_log.json'})",
        highlight=False, soft_wrap=True,
    )
    if report.unfixed:
        left = ", ".join(f"{rule} {n}" for rule, n in report.unfixed.items())
        console.print(f"[yellow]not fixed[/] (needs a person): {left}", highlight=False, soft_wrap=True)


def render_rules(format: str) -> None:
    from mtdata.check.rules import RULES

    if format == "json":
        rows = [{"id": r.id, "group": r.group, "severity": r.severity.value, "summary": r.summary} for r in RULES.values()]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(show_edge=False)
    for column in ("rule", "group", "severity"):
        table.add_column(column, no_wrap=True)
    table.add_column("what it means")
    for r in RULES.values():
        table.add_row(r.id, r.group, Text(r.severity.value, style=_STYLE[r.severity.value]), r.summary)
    console.print(table)

"""``mtdata check``'s view of a data.yaml: every problem of the one reader as a finding at its key's line.

The rules are :func:`mtdata.formats.yolo.data_yaml_rules.read_data_dict`'s, the same walk that
:func:`mtdata.formats.yolo.data_yaml.parse_data_dict` (every other command, the trainer) raises the
first problem of; this module only adds lines and severities (``mtdata.check.rules``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mtdata.check.rules import finding
from mtdata.errors import Finding
from mtdata.formats.yolo.data_yaml import YAML_LOADER, DatasetConfig, load_yaml_mapping
from mtdata.formats.yolo.data_yaml_rules import read_data_dict


@dataclass
class YamlCheck:
    """Result of :func:`check_data_yaml`.

    Attributes:
        config: the parsed config; without errors it is exactly ``parse_data_dict``'s. With
            errors it keeps what is usable (bad flip_idx, skeleton or sigmas dropped), or is
            None when the document is not a mapping.
        layout_ok: the row layout (names, task, kpt_shape, kpt_names) is valid, so label rows
            can be checked.
        findings: data.yaml findings, each at its key's 1-based line (None for a missing key).
        key_lines: top-level key -> 1-based line.
    """

    config: DatasetConfig | None
    layout_ok: bool
    findings: list[Finding] = field(default_factory=list)
    key_lines: dict[str, int] = field(default_factory=dict)


def _key_lines(path: Path) -> dict[str, int]:
    try:  # load_yaml_mapping read (and bounded) this file a moment ago
        node = yaml.compose(path.read_text(), Loader=YAML_LOADER)
    except (yaml.YAMLError, OSError, UnicodeDecodeError, RecursionError):
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(k.value): k.start_mark.line + 1 for k, _ in node.value}


def check_data_dict(data: Any, file: Path, lines: dict[str, int] | None = None) -> YamlCheck:
    """Every problem of a loaded data.yaml mapping as a finding (see :func:`check_data_yaml`)."""
    lines = lines or {}
    read = read_data_dict(data, file)
    findings = [finding(p.rule, file, lines.get(p.key) if p.key else None, p.message) for p in read.problems]
    return YamlCheck(read.config, read.layout_ok, findings, lines)


def check_data_yaml(path: str | Path) -> YamlCheck:
    """Every problem of a data.yaml, each a finding at its key's line.

    Raises:
        DatasetConfigError: the file is missing, not YAML or not a mapping (nothing to check).
    """
    path = Path(path)
    data = load_yaml_mapping(path)
    return check_data_dict(data, path, _key_lines(path))

"""Faults while the writing commands run (convert, merge, check --fix, export, synth): a full disk, a
read-only output folder, unreadable inputs, symlink loops, a name that is not UTF-8.

Each is one line on stderr naming the path and what happened, exit 2, nothing half-written (no OUT,
no temporary folder beside it) and the inputs byte-identical.

Root reads and writes whatever the file modes say; the permission tests therefore run the command
without the capabilities that let root ignore them (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), as any
user runs. The full-disk tests fill a tiny tmpfs mounted in a private mount namespace (root only;
skipped elsewhere) and, everywhere, inject ENOSPC into the Nth write of the command run in-process.
"""

from __future__ import annotations

import builtins
import ctypes
import errno
import io
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.mtdata.writing import Command, commands, inputs_digest, make_inputs, temp_beside

SEED = 14
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2
PR_CAPBSET_DROP = 24
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux system calls")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    return make_inputs(tmp_path_factory.mktemp("faults"), coco_images=40, synth_images=12)


@pytest.fixture(scope="module")
def writing(inputs) -> dict[str, Command]:
    return commands(inputs, workers=2, synth_images=4)


def _obey_file_modes() -> None:
    """In the child before exec: root loses the capabilities that override file modes."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.fixture(scope="module")
def as_a_user(tmp_path_factory):
    """A ``preexec_fn`` under which file modes hold for this process's children (None: they hold already)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    probe = tmp_path_factory.mktemp("probe") / "unreadable"
    probe.write_text("x")
    probe.chmod(0)
    try:
        done = subprocess.run([sys.executable, "-c", f"open({str(probe)!r})"], preexec_fn=_obey_file_modes,
                              capture_output=True, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        pytest.skip(f"cannot drop root's file capabilities here: {e}")
    if done.returncode == 0:
        pytest.skip("root reads a file of mode 000 even without CAP_DAC_OVERRIDE here")
    return _obey_file_modes


def _mtdata(argv: list, cwd: Path, preexec=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mtdata", *argv], cwd=cwd, preexec_fn=preexec, capture_output=True,
                          timeout=120, check=False)


def _one_line_error(done, *needles: str) -> str:
    """The one error line of a failed run (exit 2, nothing else on stderr, no traceback)."""
    err = done.stderr.decode(errors="replace") if isinstance(done.stderr, bytes) else done.stderr
    lines = err.strip().splitlines()
    assert done.returncode == 2, f"exit {done.returncode}: {err[-1500:]}"
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-1500:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _nothing_written(out: Path) -> None:
    assert not os.path.lexists(out), f"{out} exists"
    assert temp_beside(out) == []


# --- the output folder ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["convert", "convert --images", "merge", "check --fix", "export", "synth"])
def test_a_read_only_output_folder_is_one_line(inputs, writing, as_a_user, tmp_path, name):
    before = inputs_digest(inputs)
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    out = folder / writing[name].out_name
    try:
        done = _mtdata(writing[name].argv(out), tmp_path, as_a_user)
        _one_line_error(done, str(out), "Permission denied")
        assert os.listdir(folder) == []
    finally:
        folder.chmod(0o755)
    assert inputs_digest(inputs) == before


@pytest.mark.parametrize("name", ["convert", "merge", "export", "synth"])
def test_a_read_only_out_to_overwrite_stays_as_it_was(inputs, writing, as_a_user, tmp_path, name):
    """--overwrite of an OUT the user may not change (a folder of mode 555, or a file in one): refused, kept."""
    command = writing[name]
    out = tmp_path / "folder" / command.out_name
    out.parent.mkdir()
    assert _mtdata(command.argv(out), tmp_path).returncode == 0
    locked = out if out.is_dir() else out.parent
    locked.chmod(0o555)
    try:
        listing = sorted(os.listdir(out)) if out.is_dir() else out.read_bytes()
        done = _mtdata(command.argv(out, overwrite=True), tmp_path, as_a_user)
        _one_line_error(done, "Permission denied")
        assert (sorted(os.listdir(out)) if out.is_dir() else out.read_bytes()) == listing
        assert temp_beside(out) == []
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize("name", ["convert", "convert --images", "merge", "check --fix", "export", "synth"])
@pytest.mark.parametrize("where", ["OUT", "OUT's folder"])
def test_a_symlink_loop_as_out_is_one_line(writing, tmp_path, name, where):
    loop = tmp_path / "loop"
    loop.symlink_to("loop")
    out = loop if where == "OUT" else loop / writing[name].out_name
    done = _mtdata(writing[name].argv(out), tmp_path)
    _one_line_error(done, str(loop), "symlink loop")
    assert os.readlink(loop) == "loop" and sorted(os.listdir(tmp_path)) == ["loop"]


@pytest.mark.parametrize("name", ["convert", "convert --images", "merge", "check --fix", "export", "synth"])
@pytest.mark.parametrize("where", ["OUT", "OUT's folder", "--report"])
def test_an_out_that_is_not_utf8_is_refused_in_one_line(inputs, writing, tmp_path, name, where):
    command = writing[name]
    odd = os.fsencode(tmp_path) + b"/caf\xe9"  # Latin-1 bytes: not UTF-8
    if where == "--report":
        if command.arguments[0] not in ("convert", "merge", "export"):
            pytest.skip("no --report")
        argv = [*command.argv(tmp_path / command.out_name), "--report", os.fsdecode(odd + b".json")]
    else:
        out = odd if where == "OUT" else odd + b"/" + command.out_name.encode()
        argv = [os.fsencode(a) for a in command.argv(Path(os.fsdecode(out)))]
    before = inputs_digest(inputs)
    done = _mtdata(argv, tmp_path)
    _one_line_error(done, "caf\\xe9", "not valid UTF-8")
    assert os.listdir(tmp_path) == []  # the report is checked before the work: no OUT either
    assert inputs_digest(inputs) == before


# --- unreadable inputs ---------------------------------------------------------------------------


def _copy_inputs(inputs: dict[str, Path], to: Path) -> dict[str, Path]:
    """A copy of the inputs whose files a test may break (data.yaml paths made relative to the copy)."""
    copied = {"root": to}
    for name in ("big", "pose", "seg", "synth", "ds"):
        shutil.copytree(inputs["root"] / name, to / name, symlinks=True)
        copied[name] = to / name
    copied["big"] = to / "big" / "train.json"
    for name in ("pose", "seg", "ds"):
        yaml = to / name / "data.yaml"
        yaml.write_text("\n".join("path: ." if line.startswith("path:") else line for line in yaml.read_text().splitlines()) + "\n")
    return copied


# (command, what is broken, a path relative to the inputs' copy)
BROKEN = [
    ("convert", "file", "big/train.json"),
    ("convert --images", "file", "synth/images/train/000000000003.jpg"),
    ("merge", "file", "pose/labels/train/000000000004.txt"),
    ("merge", "file", "seg/data.yaml"),
    ("merge", "folder", "seg/labels/train"),
    ("check --fix", "file", "ds/labels/train/000000000004.txt"),
    ("check --fix", "folder", "ds/labels/val"),
    ("check --fix", "folder", "ds/images/val"),
    ("export", "file", "ds/data.yaml"),
    ("export", "folder", "ds/images/train"),
    ("export", "folder", "ds/labels/train"),
]


def _break(path: Path, how: str) -> None:
    if how == "loop":
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
        path.symlink_to(path.name)
    else:
        path.chmod(0)


@pytest.mark.parametrize("how", ["unreadable", "loop"])
@pytest.mark.parametrize(("name", "kind", "relative"), BROKEN, ids=[f"{n}-{r}" for n, _, r in BROKEN])
def test_an_unreadable_or_looping_input_is_one_line_naming_it(inputs, as_a_user, tmp_path, name, kind, relative, how):
    if how == "loop" and kind == "folder" and relative.endswith("train"):
        pytest.skip("a split folder that is a loop is a missing split: data.yaml checks report it")
    copied = _copy_inputs(inputs, tmp_path / "in")
    command = commands(copied, workers=2, synth_images=4)[name]
    broken = copied["root"] / relative
    _break(broken, how)
    out = tmp_path / command.out_name
    try:
        done = _mtdata(command.argv(out), tmp_path, as_a_user if how == "unreadable" else None)
    finally:
        if how == "unreadable":
            broken.chmod(0o755 if kind == "folder" else 0o644)
    reason = "Permission denied" if how == "unreadable" else ("symlink loop", "Too many levels of symbolic links")
    line = _one_line_error(done)
    assert relative.split("/")[-1] in line or broken.name in line, line
    assert any(r in line for r in ((reason,) if isinstance(reason, str) else reason)), line
    _nothing_written(out)


# --- a full disk ---------------------------------------------------------------------------------

# Run in a fresh mount namespace: a tmpfs of the given options at argv[1], then ``mtdata argv[3:]``; prints what
# the run left on that file system. The mount vanishes with the namespace.
FULL_DISK = r"""
import ctypes, json, os, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)
def check(result, what):
    if result != 0:
        raise SystemExit(f"{what}: {os.strerror(ctypes.get_errno())}")
check(libc.unshare(0x00020000), "unshare(CLONE_NEWNS)")
check(libc.mount(None, b"/", None, 16384 | (1 << 18), None), "mount --make-rprivate /")
check(libc.mount(b"tmpfs", os.fsencode(sys.argv[1]), b"tmpfs", 0, sys.argv[2].encode()), "mount tmpfs")
done = subprocess.run([sys.executable, "-m", "mtdata", *sys.argv[3:]], capture_output=True, text=True)
left = sorted(os.path.relpath(os.path.join(d, n), sys.argv[1]) for d, dirs, files in os.walk(sys.argv[1]) for n in dirs + files)
print(json.dumps({"code": done.returncode, "stderr": done.stderr, "left": left}))
"""


def _on_a_tiny_disk(disk: Path, options: str, argv: list[str]) -> dict:
    done = subprocess.run([sys.executable, "-c", FULL_DISK, str(disk), options, *argv], capture_output=True, text=True,
                          timeout=120, check=False)
    if done.returncode != 0:
        pytest.skip(f"no private tmpfs here: {done.stderr.strip()[-300:]}")
    return json.loads(done.stdout)


def _output_size(command: Command, folder: Path) -> tuple[int, int]:
    """(bytes rounded to 4 kB pages, entries) of what ``command`` writes."""
    out = folder / command.out_name
    assert _mtdata(command.argv(out), folder).returncode == 0
    paths = [out] if out.is_file() else [Path(d) / n for d, dirs, files in os.walk(out) for n in dirs + files]
    size = sum(-(-p.lstat().st_size // 4096) * 4096 for p in paths)
    return size, len(paths)


@linux_only
@pytest.mark.parametrize("name", ["convert", "convert --images", "merge", "check --fix", "export", "synth"])
def test_a_full_disk_is_one_line_and_leaves_nothing(inputs, writing, tmp_path, name):
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs takes root")
    command = writing[name]
    size, entries = _output_size(command, tmp_path)
    before = inputs_digest(inputs)
    rng = random.Random(f"{SEED}-{name}")
    failed = 0
    for trial in range(4):  # bytes run out, or inodes (a file system full of small files)
        disk = tmp_path / f"disk{trial}"
        disk.mkdir()
        if trial % 2:
            options = f"size={rng.randint(1, max(1, size // 4096 - 1)) * 4}k"
        else:
            options = f"size=64m,nr_inodes={rng.randint(2, max(2, entries))}"
        run = _on_a_tiny_disk(disk, options, command.argv(disk / command.out_name))
        if run["code"] == 0:  # it fitted after all
            assert command.out_name in run["left"] and not [n for n in run["left"] if ".tmp-" in n], run
            continue
        failed += 1
        line = _one_line_error(subprocess.CompletedProcess([], run["code"], "", run["stderr"]))
        assert "No space left on device" in line or "is the disk full" in line, line
        assert str(disk) in line, line
        assert run["left"] == [], f"{options}: {run['left'][:5]}"
    assert failed >= 2
    assert inputs_digest(inputs) == before


class _FullDisk:
    """Makes the Nth write-like call of this process fail with ENOSPC (after ``dry`` counts them only)."""

    def __init__(self, monkeypatch, fail_at: int | None):
        self.calls, self.fail_at = 0, fail_at
        real_open, real_io_open, real_write = os.open, io.open, os.write
        real_mkdir, real_symlink, real_copyfile = os.mkdir, os.symlink, shutil.copyfile
        writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT

        def hit(path=None):
            self.calls += 1
            if self.calls == self.fail_at:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), *([os.fspath(path)] if path is not None else []))

        def fs_open(path, flags, *args, **kwargs):
            if flags & writes:
                hit(path)
            return real_open(path, flags, *args, **kwargs)

        def py_open(file, mode="r", *args, **kwargs):
            if isinstance(file, (str, bytes, os.PathLike)) and any(m in mode for m in "wax+"):
                hit(file)
            return real_io_open(file, mode, *args, **kwargs)

        def fs_write(fd, data):
            hit()
            return real_write(fd, data)

        for module, name, wrapper in (
            (os, "open", fs_open), (os, "write", fs_write), (io, "open", py_open), (builtins, "open", py_open),
            (os, "mkdir", lambda p, *a, **k: (os.path.lexists(p) or hit(p), real_mkdir(p, *a, **k))[1]),  # EEXIST comes first
            (os, "symlink", lambda s, d, *a, **k: (hit(d), real_symlink(s, d, *a, **k))[1]),
            (shutil, "copyfile", lambda s, d, *a, **k: (hit(d), real_copyfile(s, d, *a, **k))[1]),
        ):
            monkeypatch.setattr(module, name, wrapper)
        import cv2

        real_imwrite = cv2.imwrite

        def imwrite(path, *args, **kwargs):  # OpenCV answers a full disk with False
            self.calls += 1
            return False if self.calls == self.fail_at else real_imwrite(path, *args, **kwargs)

        monkeypatch.setattr(cv2, "imwrite", imwrite)


@pytest.mark.parametrize("name", ["convert", "convert --images", "merge", "check --fix", "export", "synth"])
def test_a_disk_full_at_any_write_is_one_line_and_leaves_nothing(inputs, tmp_path, monkeypatch, name):
    """ENOSPC injected at the Nth write-like call (seeded N over all the calls of a run), in this process."""
    from mtdata.cli import app

    command = commands(inputs, workers=1, synth_images=4)[name]  # one process: every write passes the patches
    before = inputs_digest(inputs)
    runner = CliRunner()
    for dry_run in ("first", "second"):  # the second counts: the first also pays for first imports
        (tmp_path / f"dry-{dry_run}").mkdir()  # as each trial's folder exists
        with monkeypatch.context() as patch:
            counter = _FullDisk(patch, None)
            dry = runner.invoke(app, command.argv(tmp_path / f"dry-{dry_run}" / command.out_name))
            total = counter.calls
        assert dry.exit_code == 0, dry.output
    rng = random.Random(f"{SEED}-{name}")
    for trial, fail_at in enumerate(sorted(rng.sample(range(1, total + 1), min(6, total)))):
        out = tmp_path / f"t{trial}" / command.out_name
        out.parent.mkdir()
        with monkeypatch.context() as patch:
            _FullDisk(patch, fail_at)
            result = runner.invoke(app, command.argv(out))
        err = result.stderr
        assert result.exit_code == 2 and "Traceback" not in err, f"write {fail_at} of {total}: {result.output[-1500:]}"
        lines = err.strip().splitlines()
        assert len(lines) == 1 and ("No space left on device" in lines[0] or "is the disk full" in lines[0]), err
        assert os.listdir(out.parent) == [], f"write {fail_at} of {total}: {os.listdir(out.parent)}"
    assert inputs_digest(inputs) == before

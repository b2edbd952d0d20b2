"""Hostile ``.pt`` files, made the way an attacker would: each would run code (or do harm) under
``torch.load(weights_only=False)``. Every maker leaves an observable trace in ``tmp`` if it runs.

``HOSTILE`` maps a name to ``make(path, tmp) -> (global named in the refusal, harmed(tmp) -> bool)``.
"""

from __future__ import annotations

import builtins
import os
import pickle
import shutil
import subprocess
from pathlib import Path


class Payload:
    """Pickles as a call of ``func(*args)``: what a malicious checkpoint is."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _marker_code(marker: Path) -> str:
    return f"__import__('pathlib').Path({str(marker)!r}).touch()"


def _touched(name: str):
    return lambda tmp: (tmp / name).exists()


def _save(obj, path: Path, **kwargs) -> None:
    import torch

    torch.save(obj, path, **kwargs)


def os_system(path, tmp):
    _save({"model": Payload(os.system, (f"touch {tmp / 'pwned'}",))}, path)
    return "posix.system", _touched("pwned")


def builtins_eval(path, tmp):
    _save({"model": Payload(builtins.eval, (_marker_code(tmp / "pwned"),))}, path)
    return "builtins.eval", _touched("pwned")


def builtins_exec(path, tmp):
    _save({"ema": Payload(builtins.exec, (_marker_code(tmp / "pwned"),)), "epoch": 3}, path)
    return "builtins.exec", _touched("pwned")


def subprocess_popen(path, tmp):
    _save({"model": Payload(subprocess.Popen, (["touch", str(tmp / "pwned")],))}, path)
    return "subprocess.Popen", _touched("pwned")


def shutil_rmtree(path, tmp):
    (tmp / "victim").mkdir(exist_ok=True)
    _save({"model": None, "train_args": Payload(shutil.rmtree, (str(tmp / "victim"),))}, path)
    return "shutil.rmtree", lambda t: not (t / "victim").exists()


def protocol4_stack_global(path, tmp):
    """Protocol 4 names globals with STACK_GLOBAL instead of GLOBAL."""
    _save({"model": Payload(os.system, (f"touch {tmp / 'pwned'}",))}, path, pickle_protocol=4)
    return "posix.system", _touched("pwned")


def legacy_format(path, tmp):
    """torch's pre-1.6 format: several pickles, not a zip archive."""
    _save({"model": Payload(os.system, (f"touch {tmp / 'pwned'}",))}, path, _use_new_zipfile_serialization=False)
    return "posix.system", _touched("pwned")


def bare_pickle(path, tmp):
    """A plain pickle renamed .pt."""
    path.write_bytes(pickle.dumps(Payload(os.system, (f"touch {tmp / 'pwned'}",))))
    return "posix.system", _touched("pwned")


def numpy_array(path, tmp):
    """Not harmful, but numpy arrays are not part of any checkpoint: refused all the same."""
    import numpy as np

    _save({"model": None, "anchors": np.zeros(3)}, path)
    return "numpy", lambda t: False


def torch_distribution(path, tmp):
    """A torch class that is not a layer."""
    import torch

    _save({"model": torch.distributions.Normal(torch.tensor(0.0), torch.tensor(1.0))}, path)
    return "torch.distributions.normal.Normal", lambda t: False


def _evil_cfg(tmp: Path) -> dict:
    """A model YAML whose ``activation`` ultralytics' parse_model would eval()."""
    return {"activation": f"{_marker_code(tmp / 'pwned')} or __import__('torch').nn.SiLU()", "nc": 1,
            "backbone": [[-1, 1, "Conv", [16, 3, 2]]], "head": [[-1, 1, "Detect", ["nc"]]]}


def model_constructor(path, tmp):
    """An allowed class, called: DetectionModel(cfg) would eval the cfg's activation."""
    from ultralytics.nn.tasks import DetectionModel

    _save({"model": Payload(DetectionModel, (_evil_cfg(tmp),))}, path)
    return "ultralytics.nn.tasks.DetectionModel", _touched("pwned")


def rebuild_from_type(path, tmp):
    """torch's own allowed _rebuild_from_type_v2 calls its first argument: here an allowed model class."""
    import torch
    from ultralytics.nn.tasks import DetectionModel

    _save({"model": Payload(torch._tensor._rebuild_from_type_v2, (DetectionModel, torch.Tensor, (_evil_cfg(tmp),), {}))},
          path)
    return "ultralytics.nn.tasks.DetectionModel", _touched("pwned")


def getattr_method(path, tmp):
    """getattr(SegmentationModel, "_from_yaml"): a method that would build a model from the file's YAML."""
    from ultralytics.nn.tasks import SegmentationModel

    _save({"model": None, "hook": Payload(getattr, (SegmentationModel, "_from_yaml"))}, path)
    return "getattr(ultralytics.nn.tasks.SegmentationModel, _from_yaml)", lambda t: False


HOSTILE = {f.__name__: f for f in (
    os_system, builtins_eval, builtins_exec, subprocess_popen, shutil_rmtree, protocol4_stack_global, legacy_format,
    bare_pickle, numpy_array, torch_distribution, model_constructor, rebuild_from_type, getattr_method,
)}

# Many more members of the class: any global an attacker could name, written into data.pkl by name (as an attacker
# writes it: no need to import it). Each call writes, removes or runs something in tmp, so a test can tell it never
# ran. (global in the file, global the refusal names (torch maps Python 2 names), args(tmp)). Nothing here may
# hang or replace the process if it did run (no exec*, no interactive prompts): the test must be able to fail.
FORBIDDEN_CALLS = [
    ("posix.system", "posix.system", lambda t: (f"touch {t / 'pwned'}",)),
    ("os.system", "os.system", lambda t: (f"touch {t / 'pwned'}",)),
    ("nt.system", "nt.system", lambda t: (f"touch {t / 'pwned'}",)),
    ("os.popen", "os.popen", lambda t: (f"touch {t / 'pwned'}",)),
    ("os.spawnv", "os.spawnv", lambda t: (os.P_WAIT, "/usr/bin/touch", ["touch", str(t / "pwned")])),
    ("posix.remove", "posix.remove", lambda t: (str(t / "victim.txt"),)),
    ("posix.rename", "posix.rename", lambda t: (str(t / "victim.txt"), str(t / "pwned"))),
    ("builtins.eval", "builtins.eval", lambda t: (_marker_code(t / "pwned"),)),
    ("__builtin__.eval", "builtins.eval", lambda t: (_marker_code(t / "pwned"),)),
    ("builtins.exec", "builtins.exec", lambda t: (_marker_code(t / "pwned"),)),
    ("builtins.open", "builtins.open", lambda t: (str(t / "pwned"), "w")),
    ("io.open", "io.open", lambda t: (str(t / "pwned"), "w")),
    ("builtins.compile", "builtins.compile", lambda t: ("1", "x", "eval")),
    ("builtins.__import__", "builtins.__import__", lambda t: ("antigravity",)),
    ("subprocess.Popen", "subprocess.Popen", lambda t: (["touch", str(t / "pwned")],)),
    ("subprocess.call", "subprocess.call", lambda t: (["touch", str(t / "pwned")],)),
    ("subprocess.run", "subprocess.run", lambda t: (["touch", str(t / "pwned")],)),
    ("subprocess.check_output", "subprocess.check_output", lambda t: (["touch", str(t / "pwned")],)),
    ("shutil.rmtree", "shutil.rmtree", lambda t: (str(t / "victim"),)),
    ("shutil.copy", "shutil.copy", lambda t: ("/etc/hostname", str(t / "pwned"))),
    ("pathlib.Path", "pathlib.Path", lambda t: (str(t / "pwned"),)),
    ("importlib.import_module", "importlib.import_module", lambda t: ("this",)),
    ("runpy.run_path", "runpy.run_path", lambda t: (str(t / "script.py"),)),
    ("pickle.loads", "pickle.loads", lambda t: (pickle.dumps(Payload(os.system, (f"touch {t / 'pwned'}",))),)),
    ("torch.load", "torch.load", lambda t: (str(t / "inner.pt"),)),
    ("torch.serialization.load", "torch.serialization.load", lambda t: (str(t / "inner.pt"),)),
    ("torch.hub.load", "torch.hub.load", lambda t: ("x", "y")),
    ("torch.jit.load", "torch.jit.load", lambda t: (str(t / "inner.pt"),)),
    ("torch.utils.cpp_extension.load_inline", "torch.utils.cpp_extension.load_inline", lambda t: ("x", "")),
    ("numpy.load", "numpy.load", lambda t: (str(t / "inner.npy"),)),
    ("numpy.fromfile", "numpy.fromfile", lambda t: ("/etc/hostname",)),
    ("numpy.testing.run_module_suite", "numpy.testing.run_module_suite", lambda t: ()),
    ("ultralytics.utils.checks.check_requirements", "ultralytics.utils.checks.check_requirements",
     lambda t: ("pwned-package",)),
    ("ultralytics.nn.tasks.yaml_model_load", "ultralytics.nn.tasks.yaml_model_load", lambda t: (str(t / "x.yaml"),)),
    ("ultralytics.nn.tasks.torch_safe_load", "ultralytics.nn.tasks.torch_safe_load", lambda t: (str(t / "inner.pt"),)),
    ("ultralytics.nn.tasks.parse_model", "ultralytics.nn.tasks.parse_model", lambda t: ("x", 3)),
    ("mttrain.checkpoint_guard.trust_weights_file", "mttrain.checkpoint_guard.trust_weights_file",
     lambda t: (str(t / "inner.pt"),)),
    ("torch.nn.modules.module.Module.register_forward_hook", "torch.nn.modules.module.Module.register_forward_hook",
     lambda t: ()),
    ("torch.nn.modules.TransformerDecoder", "torch.nn.modules.TransformerDecoder", lambda t: ()),
]


def save_global_call(path: Path, name: str, args: tuple, inside: dict | None = None) -> Path:
    """A torch.save archive holding ``name(*args)`` (the global written by name, as an attacker writes it: it need
    not be importable here), alone (``{"model": call}``) or inside the checkpoint dict ``inside``
    (``inside["train_args"]["callback"]``)."""
    import io
    import zipfile

    import torch

    call = Payload(os.system, args)  # pickled as GLOBAL posix.system, then renamed below
    if inside is None:
        obj = {"model": call}
    else:
        obj = dict(inside, train_args={**inside.get("train_args", {}), "callback": call})
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as archive:
        records = {i.filename.split("/", 1)[1]: archive.read(i) for i in archive.infolist()}
    module, _, attr = name.rpartition(".")
    original = b"c" + os.system.__module__.encode() + b"\nsystem\n"
    assert records["data.pkl"].count(original) == 1
    records["data.pkl"] = records["data.pkl"].replace(original, b"c" + module.encode() + b"\n" + attr.encode() + b"\n")
    path.write_bytes(_zip_with(records))
    return path


def prepare_victims(tmp: Path) -> None:
    """What the calls above would harm, or run."""
    (tmp / "victim").mkdir(exist_ok=True)
    (tmp / "victim.txt").write_text("keep me")
    (tmp / "script.py").write_text(f"{_marker_code(tmp / 'pwned')}\n")
    inner = tmp / "inner.pt"
    if not inner.exists():
        _save({"model": Payload(os.system, (f"touch {tmp / 'pwned'}",))}, inner)


def harmed(tmp: Path) -> bool:
    return (tmp / "pwned").exists() or not (tmp / "victim").is_dir() or not (tmp / "victim.txt").is_file()


# --- fuzzing: files that are not checkpoints, or damaged ones -------------------------------------------------------

def small_checkpoint(path: Path) -> Path:
    """A real multitask checkpoint as the trainer writes one (model, ema, train_args, ...), at a width that keeps
    it ~100 KB so a fuzzer can load it hundreds of times."""
    import torch

    from mttrain.nn.model import MultiTaskModel, load_model_cfg

    cfg = load_model_cfg("yolov8n-multitask.yaml")
    cfg["scales"] = {"n": [0.33, 0.0625, 1024]}
    model = MultiTaskModel(cfg, nc=2, data_kpt_shape=(3, 3), verbose=False)
    model.names, model.kpt_names = {0: "a", 1: "b"}, {0: ["x", "y", "z"]}
    torch.save({"epoch": -1, "model": model.half(), "ema": None, "train_args": {"imgsz": 64, "data": "d.yaml"},
                "date": "2026-01-01", "version": "8.4"}, path)
    return path


def _zip_with(records: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in records.items():
            archive.writestr(f"archive/{name}", data)
    return buffer.getvalue()


def _data_pkl(real: bytes) -> tuple[int, int]:
    """(start, end) of data.pkl's bytes inside a torch.save zip."""
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(real)) as archive:
        info = archive.getinfo("archive/data.pkl") if "archive/data.pkl" in archive.namelist() else next(
            i for i in archive.infolist() if i.filename.endswith("/data.pkl"))
    header = 30 + len(info.filename.encode()) + len(info.extra)  # local header: fixed part + name + extra
    start = info.header_offset + header
    return start, start + info.file_size


def fuzz_cases(rng, real: bytes):
    """Endless (kind, bytes) of broken .pt files derived from ``real`` (a checkpoint's bytes) and noise."""
    import pickle

    start, end = _data_pkl(real)
    opcodes = [bytes([c]) for c in b"()]}NI.01aeqhtuRbcK\x80\x85\x86\x87\x88\x89\x8c\x8e\x93\x94\x95"]
    texts = [b"", b"\n", b"hello world\n", b"model: yolov8n.pt\n", b'{"model": 1}', b"PK", b"PK\x03\x04",
             "é€😀\n".encode(), b"\x80\x02}q\x00.", b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\n"]
    while True:
        kind = rng.choice(["random", "text", "truncated", "flipped", "flipped_pickle", "random_pickle",
                           "opcode_soup", "spliced"])
        if kind == "random":
            data = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 2048)))
        elif kind == "text":
            data = rng.choice(texts) * rng.randint(1, 50)
        elif kind == "truncated":
            data = real[: rng.randint(0, len(real) - 1)]
        elif kind in ("flipped", "flipped_pickle"):
            data = bytearray(real)
            lo, hi = (start, end) if kind == "flipped_pickle" else (0, len(real))
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(lo, hi)] = rng.getrandbits(8)
            data = bytes(data)
        elif kind == "random_pickle":
            data = _zip_with({"data.pkl": bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 512))),
                              "version": b"3\n"})
        elif kind == "opcode_soup":
            body = b"".join(rng.choice(opcodes) + bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 3)))
                            for _ in range(rng.randint(1, 60)))
            data = _zip_with({"data.pkl": b"\x80\x02" + body + b".", "version": b"3\n"})
        else:  # a real pickle with a random value spliced in
            value = rng.choice([None, 1, "x" * 50, [1] * 10, {"model": 3}, (1, 2), b"\x00" * 10, 1e308])
            data = _zip_with({"data.pkl": pickle.dumps({"model": value, "ema": value}, protocol=2),
                              "version": b"3\n"})
        yield kind, data

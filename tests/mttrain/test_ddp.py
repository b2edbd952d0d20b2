"""Multi-GPU DDP stays possible: ultralytics' generated worker script rebuilds mttrain's trainer."""

import subprocess
import sys

from mttrain.train import MultiTaskTrainer


def test_ddp_worker_state_imports_the_multitask_trainer(tmp_path, tiny_data, monkeypatch):
    from ultralytics.utils import dist

    monkeypatch.setattr(dist, "USER_CONFIG_DIR", tmp_path)
    trainer = MultiTaskTrainer(overrides=dict(model="yolov8n-multitask.yaml", data=str(tiny_data), epochs=1, imgsz=64, device="cpu", project=str(tmp_path), name="ddp"))
    script = dist.generate_ddp_file(trainer)
    state_file = script.replace(".py", ".pt")
    # A fresh interpreter, as torch.distributed.run starts it, must find the trainer by module path.
    code = (
        "from ultralytics.utils.patches import torch_load; "
        f"state = torch_load({state_file!r}, map_location='cpu', weights_only=False); "
        "print(state['trainer'].__module__, state['trainer'].__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["mttrain.train", "MultiTaskTrainer"]
    assert "trainer.train()" in open(script).read()

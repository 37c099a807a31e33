"""SIGKILL a real training run (at a random moment, or inside a checkpoint save), resume it, and get the
weights of an uninterrupted run, bit for bit, with no temporary file left anywhere."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from adjustable_style.train import fit, newest_checkpoint

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "configs" / "train" / "quick.yaml"
STEPS, EVERY = 6, 2  # three saves, each a step checkpoint then last.ckpt: six torch.save calls

# Runs `adjustable-style train`; with KILL_AT_SAVE=k it SIGKILLs itself inside the k-th torch.save, after
# writing KILL_FRACTION of the bytes into the temporary file (1.0: complete, but not yet renamed into place).
DRIVER = """
import io, os, signal, sys
import torch
from adjustable_style.cli import main

kill_at, fraction, count = int(os.environ.get("KILL_AT_SAVE", "0")), float(os.environ.get("KILL_FRACTION", "1")), 0
real_save = torch.save

def save(obj, f, *args, **kwargs):
    global count
    count += 1
    if count != kill_at:
        return real_save(obj, f, *args, **kwargs)
    buf = io.BytesIO()
    real_save(obj, buf, *args, **kwargs)
    data = buf.getvalue()
    f.write(data[: int(len(data) * fraction)])
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)

torch.save = save
sys.exit(main(sys.argv[1:]))
"""


def _overrides(shared_data: Path, out: Path, *extra: str) -> list[str]:
    return [
        f"data.content_dirs=[{shared_data / 'content'}]",
        f"data.style_dirs=[{shared_data / 'style'}]",
        "data.crop_size=64",
        "data.style_size=64",
        "data.batch_size=2",
        "data.num_workers=0",
        f"log.out_dir={out}",
        "log.progress_bar=false",
        "log.image_every_n_steps=0",
        "trainer.val_check_interval=100000",
        "optim.warmup_steps=2",
        f"trainer.max_steps={STEPS}",
        f"log.checkpoint_every_n_steps={EVERY}",
        "log.keep_checkpoints=-1",
        *extra,
    ]


def _train(driver: Path, overrides: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(driver), "train", str(QUICK), *overrides],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def reference(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    """Final weights of the same run, uninterrupted (in this process: same threads, same seed)."""
    from adjustable_style.config import load_config

    out = tmp_path_factory.mktemp("uninterrupted")
    trainer, _ = fit(load_config(QUICK, _overrides(shared_data, out)))
    return _weights(Path(trainer.checkpoint_callback.last_model_path))  # type: ignore[union-attr]


# The resumed run writes to its own version folder, so Lightning notes that the checkpoint folder changed.
@pytest.mark.filterwarnings("ignore:The dirpath has changed:UserWarning")
@pytest.mark.parametrize("when", ["inside_a_save", "random_moment"])
def test_sigkill_then_resume_gives_the_uninterrupted_weights(
    shared_data: Path, tmp_path: Path, reference: dict[str, torch.Tensor], when: str
) -> None:
    rng = random.Random()  # a different moment each run; printed so a failure can be replayed
    seed = rng.randrange(2**32)
    rng.seed(seed)
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    out = tmp_path / "runs"
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    if when == "inside_a_save":  # saves 2..6: at least one complete checkpoint exists before the kill
        env |= {"KILL_AT_SAVE": str(rng.randint(2, 2 * STEPS // EVERY)), "KILL_FRACTION": f"{rng.random():.3f}"}
    proc = _train(driver, _overrides(shared_data, out), env)
    ckpts = out / "quick" / "version_0" / "checkpoints"
    if when == "random_moment":
        while not any(ckpts.glob("step*.ckpt")) and proc.poll() is None:  # a moment after the first save
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 2.0))
        proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=600)
    info = f"seed {seed}, env {env.get('KILL_AT_SAVE')}/{env.get('KILL_FRACTION')}; stderr: {err[-2000:]}"
    if proc.returncode != -signal.SIGKILL:  # the run finished before the random moment came: nothing to test
        assert proc.returncode == 0, info
        pytest.skip(f"the run ended before the kill ({info[:40]})")

    resumed = _train(
        driver, _overrides(shared_data, out, f"resume={ckpts / 'last.ckpt'}"), {**env, "KILL_AT_SAVE": "0"}
    )
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, info + "\nresume: " + err[-3000:]
    final = out / "quick" / "version_1" / "checkpoints" / "last.ckpt"
    if not final.exists():  # killed after the last step's checkpoint was complete: nothing was left to train
        final = newest_checkpoint(ckpts / "last.ckpt")
    assert torch.load(final, map_location="cpu", weights_only=True)["global_step"] == STEPS, info
    state = _weights(final)
    assert state.keys() == reference.keys()
    for k, v in reference.items():
        assert torch.equal(state[k], v), f"{k} differs from the uninterrupted run ({info[:60]})"
    leftovers = [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers, f"stale files {leftovers} ({info[:60]})"

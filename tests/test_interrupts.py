"""Ctrl-C and SIGTERM (``kill``, ``timeout``, ``docker stop``, batch schedulers) lose nothing
(issue 24, item 3): training and sr-train finish the iteration, checkpoint and say how to resume;
gatys writes the latest image; a signal during a checkpoint write waits for it, leaving no
temporary file and no "Exception ignored"; a reader that leaves (``| head -1``) stops the
printing, not the work.

The runs that receive a real signal are subprocesses (a SIGTERM the code did not handle would
end the test run itself); each sends the signal to itself at a chosen point, so nothing depends
on timing.
"""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from numstyle import interrupt, models
from numstyle.cli import main

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

# Runs ``numstyle ARGV`` in a fresh process after arranging for signals to arrive mid-run.
SCRIPT = r"""
import os, signal, sys
import h5py
from numstyle import cli, gatys, sr, train

mode, argv = sys.argv[1], sys.argv[2:]
calls = [0]

def hit(n, signals):
    calls[0] += 1
    if calls[0] == n:
        for s in signals:
            signal.raise_signal(s)

def wrap(owner, name, n, signals):
    real = getattr(owner, name)
    def wrapped(*args, **kwargs):
        hit(n, signals)
        return real(*args, **kwargs)
    setattr(owner, name, wrapped)

TERM, INT = [signal.SIGTERM], [signal.SIGINT]
{"train-step": lambda: wrap(train, "network_step", 2, TERM),
 "sr-step": lambda: wrap(sr, "sr_step", 2, TERM),
 "ckpt-write-term": lambda: wrap(h5py.Group, "create_dataset", 1, TERM),
 "ckpt-write-int-int": lambda: wrap(h5py.Group, "create_dataset", 1, INT + INT),
 "gatys-eval": lambda: wrap(gatys.Objective, "finish", 3, TERM)}[mode]()
sys.exit(cli.main(argv))
"""


def _env(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               NUMSTYLE_NO_DOWNLOAD="1", HOME=str(tmp_path))
    return env


def run_signalled(mode, argv, tmp_path):
    return subprocess.run([sys.executable, "-c", SCRIPT, mode, *argv], cwd=tmp_path,
                          env=_env(tmp_path), capture_output=True, text=True, timeout=300)


def _save(path, rng, shape):
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
    return str(path)


@pytest.fixture
def training(tmp_path, rng, synthetic_vgg):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        _save(data / f"p{i}.png", rng, (40, 40, 3))
    style = _save(tmp_path / "style.png", rng, (32, 32, 3))
    weights, _ = synthetic_vgg("vgg16")
    return ["train", "--style", style, "--data", str(data), "--weights", weights, "--size", "16",
            "--batch-size", "1", "--width", "4,6,8", "--n-res", "1", "--no-progress",
            "--out", str(tmp_path / "m.h5")]


def _temporaries(root):
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files
            if f.startswith(".numstyle-")]


def _quiet(r):
    assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr, r.stderr


def test_sigterm_checkpoints_training_and_it_resumes(training, tmp_path, capsys):
    ckpt = str(tmp_path / "m.ckpt.h5")
    r = run_signalled("train-step", training + ["--iters", "50", "--checkpoint-every", "0"],
                      tmp_path)
    assert r.returncode == 128 + signal.SIGTERM, (r.returncode, r.stderr)
    _quiet(r)
    assert "SIGTERM: stopping after this iteration" in r.stderr
    assert f"terminated: wrote {ckpt} at iteration 2" in r.stdout and f"--resume {ckpt}" in r.stdout
    assert models.load_checkpoint(ckpt)["iteration"] == 2
    assert main(training + ["--iters", "3", "--checkpoint-every", "0", "--resume", ckpt]) == 0
    assert "resuming from iteration 2" in capsys.readouterr().out
    assert os.path.isfile(tmp_path / "m.h5") and not _temporaries(tmp_path)


@pytest.mark.parametrize("mode,status", [("ckpt-write-term", 128 + signal.SIGTERM),
                                         ("ckpt-write-int-int", 128 + signal.SIGINT)])
def test_a_signal_during_a_checkpoint_write_waits_for_it(mode, status, training, tmp_path):
    """The checkpoint is whole, no hidden temporary is left; two Ctrl-C stop at once, after the
    write, without h5py's "Exception ignored" lines."""
    r = run_signalled(mode, training + ["--iters", "5", "--checkpoint-every", "1"], tmp_path)
    assert r.returncode == status, (r.returncode, r.stderr)
    _quiet(r)
    assert models.load_checkpoint(str(tmp_path / "m.ckpt.h5"))["iteration"] == 1
    assert not _temporaries(tmp_path) and not os.path.exists(tmp_path / "m.h5")


def test_sigterm_checkpoints_sr_training_and_it_resumes(tmp_path, rng, capsys):
    data = tmp_path / "data"
    data.mkdir()
    _save(data / "p.png", rng, (40, 40, 3))
    argv = ["sr-train", "--data", str(data), "--out", str(tmp_path / "sr.h5"), "--size", "16",
            "--scale", "2", "--batch-size", "1", "--width", "4", "--n-res", "1", "--iters", "50",
            "--checkpoint-every", "0", "--no-progress"]
    r = run_signalled("sr-step", argv, tmp_path)
    assert r.returncode == 128 + signal.SIGTERM, (r.returncode, r.stderr)
    _quiet(r)
    ckpt = str(tmp_path / "sr.ckpt.h5")
    assert models.load_checkpoint(ckpt)["iteration"] == 2
    assert f"--resume {ckpt}" in r.stdout
    argv[argv.index("--iters") + 1] = "3"
    assert main(argv + ["--resume", ckpt]) == 0
    assert "resuming from iteration 2" in capsys.readouterr().out
    assert os.path.isfile(tmp_path / "sr.h5") and not _temporaries(tmp_path)


def _gatys(tmp_path, rng, synthetic_vgg, *extra):
    weights, _ = synthetic_vgg("vgg16")
    return ["gatys", "--content", _save(tmp_path / "c.png", rng, (30, 36, 3)), "--style",
            _save(tmp_path / "s.png", rng, (32, 32, 3)), "--weights", weights, "--size", "32",
            "--no-progress", "--out", str(tmp_path / "out.png"), *extra]


def test_sigterm_makes_gatys_write_the_latest_image(tmp_path, rng, synthetic_vgg):
    r = run_signalled("gatys-eval", _gatys(tmp_path, rng, synthetic_vgg, "--iters", "50"),
                      tmp_path)
    assert r.returncode == 128 + signal.SIGTERM, (r.returncode, r.stderr)
    _quiet(r)
    assert f"terminated: wrote the latest image to {tmp_path / 'out.png'}" in r.stdout
    with Image.open(tmp_path / "out.png") as im:
        assert im.size == (32, 27)


def test_sigterm_at_a_coarse_scale_writes_the_image_at_the_size_asked_for(tmp_path, rng,
                                                                          synthetic_vgg):
    argv = _gatys(tmp_path, rng, synthetic_vgg, "--scales", "20,32", "--iters", "50,50")
    r = run_signalled("gatys-eval", argv, tmp_path)
    assert r.returncode == 128 + signal.SIGTERM, (r.returncode, r.stderr)
    assert "stopped at a coarser scale: 20x17, enlarged to 32x27" in r.stdout, r.stdout
    with Image.open(tmp_path / "out.png") as im:
        assert im.size == (32, 27)


def test_gatys_piped_into_head_still_writes_the_image(tmp_path, rng, synthetic_vgg):
    argv = _gatys(tmp_path, rng, synthetic_vgg, "--iters", "4", "--print-every", "1")
    p = subprocess.Popen([sys.executable, "-m", "numstyle", *argv], cwd=tmp_path,
                         env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    first = p.stdout.readline()           # what `| head -1` reads; then the reader is gone
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait(timeout=300) == 0, err
    assert first.startswith("iter 1:") and "Traceback" not in err and "Exception" not in err, err
    assert os.path.isfile(tmp_path / "out.png")


def test_held_signals_act_after_the_block():
    done = []
    with interrupt.signals_interrupt():
        with pytest.raises(interrupt.Interrupted) as e:
            with interrupt.held():
                signal.raise_signal(signal.SIGTERM)
                done.append("the write finished")
    assert done and e.value.signum == signal.SIGTERM and interrupt.exit_status(e.value) == 143


def test_first_signal_asks_the_loop_to_stop_the_second_stops_it(capsys):
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with pytest.raises(interrupt.Interrupted) as e:
        with interrupt.StopOnSignal() as stop:
            signal.raise_signal(signal.SIGTERM)
            assert stop.requested and stop.signum == signal.SIGTERM
            signal.raise_signal(signal.SIGINT)
            pytest.fail("a second signal must stop at once")
    assert e.value.signum == signal.SIGINT
    assert "SIGTERM: stopping after this iteration" in capsys.readouterr().err
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before

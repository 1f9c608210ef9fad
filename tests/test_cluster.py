"""Batches on a Dask cluster (numstyle/batch.py, numstyle/cluster.py; issue 21), and --json.

One local cluster of 2 worker processes is shared by the module (start-up takes seconds);
images and networks are tiny.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

from numstyle import batch, models
from numstyle.cli import main
from numstyle.commands import batches, media
from numstyle.stylize import stylize_array

from conftest import assert_one_line_error

distributed = pytest.importorskip("distributed")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def cluster():
    """``(scheduler address, client)`` of one local cluster of 2 processes for the module."""
    cluster_module = batch.cluster_module()
    with cluster_module.connect(workers=2) as client:
        yield client.scheduler.address, client


def photos(folder, n, rng, size=(20, 28)):
    folder.mkdir(exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"p{i}.png"
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def read(path):
    with Image.open(path) as im:
        return np.asarray(im)


def json_lines(text):
    return [json.loads(line) for line in text.strip().splitlines()]


def test_workers_give_the_in_process_outputs_bit_for_bit(tmp_path, style_model, rng, capsys,
                                                         monkeypatch):
    """--workers 2 (a local cluster of its own) writes the same bytes of pixels, under the same
    names, as the in-process run: images, and a folder of frames in chunks with --deflicker."""
    monkeypatch.setattr(batches, "FRAMES_PER_TASK", 2)   # 5 frames: 3 chunks, 2 boundaries
    monkeypatch.setenv("NUMSTYLE_THREADS", "1")   # as each of the 2 workers on 2 cores: the same
    inputs = photos(tmp_path / "in", 3, rng) + [str(tmp_path / "frames")]
    photos(tmp_path / "frames", 5, rng)
    common = ["stylize", "--model", style_model, *inputs, "--deflicker", "0.8", "--no-progress"]
    assert main(common + ["--out", str(tmp_path / "here")]) == 0
    capsys.readouterr()
    assert main(common + ["--out", str(tmp_path / "there"), "--workers", "2", "--json"]) == 0
    records = json_lines(capsys.readouterr().out)
    assert [r["type"] for r in records] == ["output"] * 4 + ["summary"]
    assert records[-1]["outputs"] == 4 and records[-1]["frames"] == 8
    here = sorted(os.path.relpath(os.path.join(d, f), tmp_path / "here")
                  for d, _, fs in os.walk(tmp_path / "here") for f in fs)
    assert len(here) == 8
    for name in here:
        np.testing.assert_array_equal(read(tmp_path / "here" / name),
                                      read(tmp_path / "there" / name))


def test_deflicker_chain_is_one_pass_across_chunks(tmp_path, style_model, rng, capsys,
                                                  monkeypatch):
    """The chain (VD1) over chunks of 2 frames equals the chain over all frames in one loop."""
    monkeypatch.setattr(batches, "FRAMES_PER_TASK", 2)
    frames = photos(tmp_path / "frames", 5, rng)
    assert main(["stylize", "--model", style_model, str(tmp_path / "frames"), "--deflicker",
                 "0.9", "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    params, config, state = models.load_model(style_model)
    prev_in = prev_out = None
    for path in frames:
        x = media.load_image(path)
        y = np.clip(stylize_array(params, config, state, x), 0, 255)
        if prev_out is not None:
            y = media.deflicker(prev_in, prev_out, x, y, 0.9)
        prev_in, prev_out = x, y
        name = os.path.basename(path)
        np.testing.assert_array_equal(read(tmp_path / "out" / "frames_m_stylized" / name),
                                      np.rint(y).astype(np.uint8))


def test_rerun_skips_finished_outputs_and_overwrite_redoes_them(tmp_path, style_model, rng,
                                                                capsys, cluster):
    inputs = photos(tmp_path / "in", 4, rng)
    argv = ["stylize", "--model", style_model, *inputs, "--out", str(tmp_path / "out"),
            "--no-progress", "--json", "--scheduler", cluster[0]]
    assert main(argv) == 0
    capsys.readouterr()
    os.remove(tmp_path / "out" / "p2_m_stylized.png")               # as if its task never ended
    with Image.open(tmp_path / "out" / "p1_m_stylized.png") as im:  # made with other settings
        im.save(tmp_path / "out" / "p1_m_stylized.png")
    assert main(argv) == 0
    printed, err = capsys.readouterr()
    summary = json_lines(printed)[-1]
    assert summary["skipped"] == 2 and summary["outputs"] == 4 and "skipped 2 of 4" in err
    redone = {r["out"] for r in json_lines(printed) if not r.get("skipped")} - {None}
    assert {os.path.basename(p) for p in redone} == {"p1_m_stylized.png", "p2_m_stylized.png"}
    assert main(argv + ["--overwrite"]) == 0
    assert json_lines(capsys.readouterr().out)[-1]["skipped"] == 0
    assert main(argv + ["--size", "16"]) == 0                     # other settings: all redone
    assert json_lines(capsys.readouterr().out)[-1]["skipped"] == 0


def test_a_killed_client_loses_nothing_finished(tmp_path, style_model, rng):
    """SIGKILL the command mid-batch; the rerun skips every output that was finished."""
    inputs = photos(tmp_path / "in", 40, rng, size=(96, 128))
    argv = [sys.executable, "-m", "numstyle", "stylize", "--model", style_model, *inputs,
            "--out", str(tmp_path / "out"), "--no-progress", "--json"]
    env = dict(os.environ, PYTHONPATH=ROOT, NUMSTYLE_THREADS="1")
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    # a finished output, not the hidden temporary file it is written through (same suffix)
    while time.time() < deadline and not any(
            f.endswith(".png") and not f.startswith(".") for f in os.listdir(tmp_path)
            if os.path.isdir(tmp_path / "out") for f in os.listdir(tmp_path / "out")):
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    done = [f for f in os.listdir(tmp_path / "out") if not f.startswith(".")]
    assert 0 < len(done) < 40, "the batch ended before the kill: make the inputs larger"
    rerun = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    summary = json_lines(rerun.stdout)[-1]
    assert summary["skipped"] == len(done) and summary["frames"] == 40 - len(done)


def test_a_bad_input_is_named_at_the_end_and_the_others_are_written(tmp_path, style_model, rng,
                                                                    capsys, cluster):
    good = photos(tmp_path / "in", 3, rng)
    garbage, truncated = tmp_path / "in" / "garbage.jpg", tmp_path / "in" / "cut.png"
    garbage.write_bytes(b"not an image at all")
    truncated.write_bytes(open(good[0], "rb").read()[:200])    # its header reads, its pixels not
    code = main(["stylize", "--model", style_model, good[0], str(garbage), good[1],
                 str(truncated), good[2], "--out", str(tmp_path / "out"), "--no-progress",
                 "--scheduler", cluster[0]])
    out, err = capsys.readouterr()
    assert_one_line_error(code, err, "2 of 5 inputs failed", "garbage.jpg", "cut.png")
    assert sorted(os.listdir(tmp_path / "out")) == ["p0_m_stylized.png", "p1_m_stylized.png",
                                                    "p2_m_stylized.png"]


def test_gatys_jobs_on_the_cluster_equal_in_process(tmp_path, synthetic_vgg, rng, capsys,
                                                    cluster, monkeypatch):
    """Several contents x --each-style: one job each, the same pictures on the cluster."""
    path, _ = synthetic_vgg("vgg16")
    contents, styles = photos(tmp_path / "c", 2, rng), photos(tmp_path / "s", 2, rng)
    argv = ["gatys", "--weights", path, "--content", *contents, "--style", *styles,
            "--each-style", "--size", "24", "--iters", "3", "--style-layers", "relu1_1,relu2_1",
            "--content-layer", "relu2_2", "--no-progress", "--json"]
    monkeypatch.setenv("NUMSTYLE_THREADS", "1")   # as each worker
    assert main(argv + ["--out", str(tmp_path / "here")]) == 0
    here = json_lines(capsys.readouterr().out)
    assert main(argv + ["--out", str(tmp_path / "there"), "--scheduler", cluster[0]]) == 0
    there = json_lines(capsys.readouterr().out)
    assert len(here) == len(there) == 5 and here[-1]["outputs"] == 4
    assert {"total", "content", "style", "iterations", "out"} <= set(here[0])
    names = sorted(os.listdir(tmp_path / "here"))
    assert names == ["p0_p0.png", "p0_p1.png", "p1_p0.png", "p1_p1.png"]
    for name in names:
        np.testing.assert_array_equal(read(tmp_path / "here" / name),
                                      read(tmp_path / "there" / name))


def test_without_dask_workers_is_a_one_line_error(tmp_path, style_model, rng, capsys,
                                                  monkeypatch):
    monkeypatch.setitem(sys.modules, "dask", None)
    monkeypatch.setitem(sys.modules, "distributed", None)
    monkeypatch.delitem(sys.modules, "numstyle.cluster", raising=False)
    code = main(["stylize", "--model", style_model, *photos(tmp_path, 2, rng), "--out",
                 str(tmp_path / "out"), "--workers", "2"])
    assert_one_line_error(code, capsys.readouterr().err, "pip install -e '.[cluster]'")


def test_local_workers_leave_ctrl_c_to_this_process(cluster):
    # a terminal's Ctrl-C reaches the whole process group: workers that took it died mid-task
    # printing Dask's tracebacks, while this process stops them in order
    import signal

    ignored = cluster[1].run(lambda: signal.getsignal(signal.SIGINT) == signal.SIG_IGN)
    assert len(ignored) == 2 and all(ignored.values())


def test_a_scheduler_address_without_a_port_is_a_one_line_error(tmp_path, style_model, rng,
                                                                 capsys):
    code = main(["stylize", "--model", style_model, *photos(tmp_path, 1, rng), "--out",
                 str(tmp_path / "out"), "--scheduler", "localhost"])
    assert_one_line_error(code, capsys.readouterr().err, "tcp://HOST:PORT")


def test_experiment_runs_as_tasks_on_the_cluster(tmp_path, synthetic_vgg, rng, capsys, cluster,
                                                  monkeypatch):
    """An experiment's runs are tasks: the same figure and losses on the cluster; --json lists
    the figure and its numbers, then the summary."""
    weights, _ = synthetic_vgg("vgg16")
    content, style = photos(tmp_path / "in", 2, rng, size=(32, 32))
    argv = ["experiments", "pooling", "--quick", "--weights", weights, "--content", content,
            "--style", style, "--json"]
    monkeypatch.setenv("NUMSTYLE_THREADS", "1")   # as each of the 2 workers on 2 cores
    assert main(argv + ["--out", str(tmp_path / "here")]) == 0
    assert main(argv + ["--out", str(tmp_path / "there"), "--scheduler", cluster[0]]) == 0
    lines = json_lines(capsys.readouterr().out)
    assert [r["type"] for r in lines] == ["output", "output", "summary"] * 2
    assert lines[0]["out"].endswith("pooling.png") and lines[1]["out"].endswith("pooling.json")
    np.testing.assert_array_equal(read(tmp_path / "here" / "pooling.png"),
                                  read(tmp_path / "there" / "pooling.png"))
    losses = [[r["loss"] for r in json.loads((tmp_path / d / "pooling.json").read_text())
               ["results"]["runs"]] for d in ("here", "there")]
    assert losses[0] == losses[1]


def test_a_worker_killed_mid_task_costs_only_its_task(tmp_path, synthetic_vgg, rng, capsys,
                                                      cluster):
    """SIGKILL a worker while it runs a Gatys job: the job runs again elsewhere; every output is
    complete. (Last in the module: the cluster's nanny restarts the worker.)"""
    address, client = cluster
    path, _ = synthetic_vgg("vgg16")
    contents = photos(tmp_path / "c", 4, rng, size=(40, 40))
    pids = client.run(os.getpid)
    killed = []

    def kill_a_busy_worker():
        deadline = time.time() + 60
        while time.time() < deadline and not killed:
            busy = [w for w, tasks in client.processing().items() if tasks and w in pids]
            if busy:
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(busy[0])
            time.sleep(0.02)

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    code = main(["gatys", "--weights", path, "--content", *contents, "--style", contents[0],
                 "--size", "40", "--iters", "25", "--style-layers", "relu1_1,relu2_1",
                 "--content-layer", "relu2_2", "--no-progress", "--json", "--out",
                 str(tmp_path / "out"), "--scheduler", address])
    killer.join()
    printed, err = capsys.readouterr()
    assert code == 0, err
    assert killed
    assert json_lines(printed)[-1]["outputs"] == 4
    for f in os.listdir(tmp_path / "out"):
        assert batch.read_fingerprint(str(tmp_path / "out" / f)) is not None   # complete

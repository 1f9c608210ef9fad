"""``numstyle bench``'s per-layer table beside PyTorch's (no PyTorch here: its rows are given)."""
from numstyle.commands.bench import print_layers


def test_the_layer_table_sets_pytorch_beside_ours_with_the_ratio(capsys):
    ours = [{"layer": "conv1_1", "forward_s": 0.002, "backward_s": 0.004},
            {"layer": "relu1_1", "forward_s": 0.001, "backward_s": 0.001}]
    theirs = [{"layer": "conv1_1", "forward_s": 0.001, "backward_s": 0.002},
              {"layer": "relu1_1", "forward_s": 0.002, "backward_s": 0.002}]
    print_layers(ours, theirs)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-5:] == ["torch", "fwd", "torch", "bwd", "ratio"]
    assert lines[1].split() == ["conv1_1", "2.0", "4.0", "1.0", "2.0", "2.00"]
    assert lines[2].split() == ["relu1_1", "1.0", "1.0", "2.0", "2.0", "0.50"]
    assert lines[3].split() == ["total", "3.0", "5.0", "3.0", "4.0", "1.14"]


def test_the_layer_table_alone(capsys):
    print_layers([{"layer": "pool1", "forward_s": 0.0005, "backward_s": 0.001}])
    lines = capsys.readouterr().out.splitlines()
    assert "torch" not in lines[0] and lines[1].split() == ["pool1", "0.5", "1.0"]


def test_pytorch_runs_on_as_many_threads_as_ours(monkeypatch):
    # NUMSTYLE_THREADS=1 on a 2-core machine: PyTorch's script is asked for 1 thread too, so the
    # ratio compares like with like (it was given os.cpu_count())
    import json
    import subprocess
    from types import SimpleNamespace

    from numstyle import settings
    from numstyle.commands import bench

    monkeypatch.setenv("NUMSTYLE_THREADS", "1")
    settings.reload()
    seen = []

    def fake_run(cmd, **kwargs):
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, stdout=json.dumps({"median_s": 1.0}), stderr="")

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    args = SimpleNamespace(what="gatys", model="vgg16", weights=None, size=32, runs=1,
                           device="cpu", pool="avg", layers=False)
    try:
        assert bench.torch_reference(args) == {"median_s": 1.0}
    finally:
        monkeypatch.delenv("NUMSTYLE_THREADS")
        settings.reload()
    cmd = seen[0]
    assert cmd[cmd.index("--threads") + 1] == "1"

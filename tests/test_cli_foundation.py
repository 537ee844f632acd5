import onnxruntime as ort
from conftest import assert_one_line_error


def test_space_show(cli):
    r = cli("space", "show", "mobilenetv2", "--resolution", "128", check=0)
    assert "distinct blocks at resolution 128:" in r.stdout and "s7" in r.stdout


def test_arch_info_mobilenetv2(cli):
    r = cli("arch", "info", "mbv2-1.0", check=0)
    assert "3.505 M" in r.stdout and "300.8 M" in r.stdout


def test_arch_sample_then_export_runs_in_onnxruntime(cli, home):
    cli("arch", "sample", "mobilenetv3", "--seed", "4", "-r", "96", "-o", "a.yaml", check=0)
    r = cli("arch", "info", "a.yaml", check=0)
    assert r.stdout.startswith("arch        r96c3_")
    cli("export", "a.yaml", "-o", "a.onnx", check=0)
    sess = ort.InferenceSession(str(home / "a.onnx"), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape == [1, 3, 96, 96]


def test_arch_baseline_at_other_resolution(cli, home):
    cli("arch", "baseline", "mbv2-0.5", "-r", "160", "-o", "b.json", check=0)
    r = cli("arch", "info", "b.json", check=0)
    assert "160x160x3" in r.stdout


def test_help_on_every_command(cli):
    for cmd in (["--help"], ["space", "show", "--help"], ["arch", "sample", "--help"],
                ["arch", "info", "--help"], ["export", "--help"]):
        r = cli(*cmd, check=0)
        assert "usage: hwnas" in r.stdout


def test_bad_input_is_one_line(cli, home):
    (home / "bad.yaml").write_text("input: {resolution: 224}\nstem: {out: 32}\n"
                                   "blocks:\n  - {kernel: 4, expand: 6, out: 24}\n")
    assert_one_line_error(cli("arch", "info", "bad.yaml"), "bad.yaml", "blocks[0].kernel")
    assert_one_line_error(cli("arch", "info", "missing.yaml"), "missing.yaml")
    assert_one_line_error(cli("space", "show", "nope"), "unknown space 'nope'")
    assert_one_line_error(cli("export", "mbv2-1.0", "-o", "x.txt"), ".onnx")
    (home / "m.yaml").write_text(": : :\n")
    assert_one_line_error(cli("arch", "info", "m.yaml"), "m.yaml")

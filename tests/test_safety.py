"""Files handed to hwnas must not make it write where it should not: temp files are fresh
names made with O_EXCL in the target folder, never a predictable name that a planted
symlink could redirect (issue 24, safety)."""

from __future__ import annotations

import os

from hwnas.onboard import weights
from hwnas.profiling.bundle import write_archive


def test_archive_temp_file_does_not_follow_a_planted_symlink(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.txt").write_text("x")
    out = tmp_path / "out"
    out.mkdir()
    # the name the archive's temp file used to have
    (out / ".b.tar.gz.tmp").symlink_to(victim)
    write_archive(tmp_path / "b", out / "b.tar.gz")
    assert victim.read_text() == "precious"
    assert (out / "b.tar.gz").is_file() and not (out / "b.tar.gz").is_symlink()
    assert sorted(p.name for p in out.iterdir()) == [".b.tar.gz.tmp", "b.tar.gz"]


def test_generated_weights_temp_file_does_not_follow_a_planted_symlink(tmp_path):
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"precious")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    # the name the data file's temp file used to have (this process writes it)
    (bundle / f"m.onnx.data.tmp-{os.getpid()}").symlink_to(victim)
    entry = {"id": "m", "file": "m.onnx", "weights": "generated",
             "data": {"file": "m.onnx.data", "bytes": 16,
                      "tensors": [{"name": "w", "offset": 0, "length": 16, "dtype": "float32",
                                   "shape": [4]}]}}
    path = weights.write_data(str(bundle), entry)
    assert victim.read_bytes() == b"precious"
    assert os.path.getsize(path) == 16 and not os.path.islink(path)


def test_view_serve_serves_the_report_and_its_images_only(tmp_path):
    import http.server
    import threading
    import urllib.error
    import urllib.request

    from hwnas.commands.view import report_handler

    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    (run / "report.html").write_text("<html>report</html>")
    (run / "pareto.png").write_bytes(b"png")
    (run / "config.json").write_text("{}")
    (run / "journal.log").write_text("secret")
    (tmp_path / "outside.txt").write_text("outside")
    (run / "link.png").symlink_to(tmp_path / "outside.txt")
    handler = report_handler(run / "report.html", [run / "pareto.png", run / "link.png"])
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"

    def get(path):
        try:
            with urllib.request.urlopen(base + path, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, b""

    try:
        assert get("/report.html") == (200, b"<html>report</html>")
        assert get("/") == (200, b"<html>report</html>")  # redirected to the report
        assert get("/pareto.png") == (200, b"png")
        for path in ("/config.json", "/journal.log", "/link.png", "/../outside.txt",
                     "/%2e%2e/outside.txt", "/runs/"):
            assert get(path)[0] == 404, path
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_search_worker_whose_launcher_is_gone_runs_no_trial():
    """A worker started after its launcher died has another parent already (PID 1 or a
    subreaper): it must compare with the launcher's PID, not adopt the parent it finds."""
    from types import SimpleNamespace

    import optuna

    from hwnas.search.run import _worker_main
    from hwnas.trials.workers import run_trials

    not_parent = os.getppid() + 1 if os.getppid() + 1 != os.getpid() else os.getppid() + 2
    # returns before reading its settings, opening the study or running anything
    assert _worker_main(None, "", 5, "", 0, 0, None, None, None, None, not_parent) is None
    study = optuna.create_study(directions=["maximize"])
    ran = []

    def objective(trial):
        ran.append(trial.number)
        return 0.0

    obj = SimpleNamespace(target=5, __call__=objective)
    run_trials(study, obj, [], watch_parent=not_parent)
    assert ran == [] and len(study.trials) == 0

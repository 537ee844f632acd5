"""Accuracy from measured results: table:FILE and predictor:FILE (hwnas.accuracy_sources),
their bad input, hwnas accuracy fit, and --archs-file batches of score / predict / arch info."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import synthetic_table

from hwnas.cli import main
from hwnas.errors import HwnasError

MACRO = Path(__file__).resolve().parent.parent / "hwnas" / "resources" / "nas-bench-macro" / "cifar10.json"


@pytest.fixture(scope="module")
def macro() -> dict:
    return json.loads(MACRO.read_text())


def run(capsys, *args) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def one_line_error(capsys, *args, fragments=()) -> str:
    rc, out, err = run(capsys, *args)
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert rc == 2, (rc, out, err)
    assert len(lines) == 1, err
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


def write_csv(path: Path, rows: list[tuple], header: str = "arch,accuracy") -> Path:
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


# ---- the table -----------------------------------------------------------------------------------

def test_table_from_nas_bench_macro_json(macro):
    from hwnas.accuracy_sources.results import TableEstimator
    from hwnas.baselines import resolve_arch

    t = TableEstimator(MACRO)
    codes = list(macro)[:3] + list(macro)[-2:]
    got = t.score([resolve_arch(f"macro:{c}") for c in codes])
    assert got == [macro[c]["mean_acc"] for c in codes]
    s = t.settings()
    assert s["estimator"] == "table" and s["rows"] == len(macro) == 6561
    assert s["format"] == "nas-bench-macro" and len(s["sha256"]) == 64
    assert t.classes == 10
    r = {x.spec: x for x in t.results.rows}[f"macro:{codes[0]}"]
    assert r.seeds == len(macro[codes[0]]["test_acc"]) and r.std == macro[codes[0]]["std"]


def test_table_from_csv_with_every_kind_of_spec(tmp_path):
    from hwnas.accuracy_sources.results import TableEstimator
    from hwnas.arch import save_arch
    from hwnas.baselines import baseline, resolve_arch

    f = save_arch(baseline("mbv2-0.75", 160), tmp_path / "a.yaml")
    b = baseline("mbv2-0.35", 128)
    csv = write_csv(tmp_path / "t.csv", [("mbv2-0.5", 0.71, 0.01, 3), (b.to_string(), 0.6, "", ""),
                                         (f, 0.7, "", ""), ("macro:01201201", 91.5, "", "")],
                    "arch,accuracy,std,seeds")
    t = TableEstimator(csv)
    # looked up by canonical string: any spec of the same arch finds it
    assert t.score([resolve_arch("mbv2-0.5@224"), resolve_arch("mbv2-0.35@128"),
                    resolve_arch(str(f)), resolve_arch("macro:01201201")]) == [0.71, 0.6, 0.7, 91.5]
    assert t.results.by_arch()[resolve_arch("mbv2-0.5").to_string()].seeds == 3


def test_table_missing_arch_is_one_line_naming_it(tmp_path, capsys):
    from hwnas.accuracy_sources.results import TableEstimator
    from hwnas.baselines import resolve_arch

    csv = write_csv(tmp_path / "t.csv", [("mbv2-0.5", 0.7)])
    with pytest.raises(HwnasError, match="is not in table") as e:
        TableEstimator(csv).score([resolve_arch("mbv2-0.5@160")])
    assert "resolution 224" in str(e.value) and resolve_arch("mbv2-0.5@160").to_string() in str(e.value)
    line = one_line_error(capsys, "score", "mbv2-1.0", "--estimator", f"table:{csv}",
                          fragments=("is not in table",))
    assert resolve_arch("mbv2-1.0").to_string() in line


def test_retrain_csv_is_a_results_file(tmp_path):
    from hwnas.accuracy_sources.results import read_results
    from hwnas.baselines import resolve_arch

    a, b = resolve_arch("mbv2-0.5@96"), resolve_arch("mbv2-0.35@96")
    f = tmp_path / "retrain.csv"
    f.write_text("name,kind,arch,params,acc_mean,acc_std,seeds\n"
                 f"W1,winner,{a.to_string()},1,0.81,0.01,0;1;2\n"
                 f"B1,baseline,{b.to_string()},1,,,\n")  # not trained yet: left out
    r = read_results(f)
    assert r.kind == "retrain-csv" and [(x.arch, x.accuracy, x.seeds) for x in r.rows] == \
        [(a.to_string(), 0.81, 3)]


# ---- bad input: one line, exit 2, nothing written ----------------------------------------------------

@pytest.mark.parametrize("rows,header,fragment", [
    ([("mbv2-0.5", "nan")], "arch,accuracy", "not a finite number"),
    ([("mbv2-0.5", -1)], "arch,accuracy", "negative"),
    ([("mbv2-0.5", 0.7), ("mbv2-0.5@224", 0.72)], "arch,accuracy", "listed twice"),
    ([], "arch,accuracy", "empty table"),
    ([("mbv2-0.5", 0.7)], "name,acc", "needs the columns arch and accuracy"),
    ([("mbv2-0.5", 0.7)], "arch,top1", "needs the columns arch and accuracy"),
])
def test_bad_tables(tmp_path, capsys, rows, header, fragment):
    csv = write_csv(tmp_path / "t.csv", rows, header)
    one_line_error(capsys, "score", "mbv2-0.5", "--estimator", f"table:{csv}", fragments=(fragment,))
    out = tmp_path / "p.json"
    one_line_error(capsys, "accuracy", "fit", csv, "-o", out, fragments=(fragment,))
    assert not out.exists()


def test_the_same_value_twice_is_fine(tmp_path):
    from hwnas.accuracy_sources.results import read_results

    csv = write_csv(tmp_path / "t.csv", [("mbv2-0.5", 0.7), ("mbv2-0.5@224", 0.7), ("mbv2-1.0", 0.8)])
    assert len(read_results(csv).rows) == 2


def test_missing_file_and_directory(tmp_path, capsys):
    one_line_error(capsys, "score", "mbv2-0.5", "--estimator", f"table:{tmp_path / 'no.csv'}",
                   fragments=("no such file",))
    one_line_error(capsys, "score", "mbv2-0.5", "--estimator", f"predictor:{tmp_path}",
                   fragments=("is a directory",))
    one_line_error(capsys, "accuracy", "fit", tmp_path, fragments=("is a directory",))


def test_a_macro_predictor_refuses_an_arch_of_another_space(tmp_path, capsys):
    one_line_error(capsys, "score", "mbv2-0.5", "--estimator", f"predictor:{MACRO}",
                   fragments=("another space", "r224"))


def test_a_predictor_file_of_another_space(tmp_path, capsys, macro):
    from hwnas.accuracy_sources.predictor import AccuracyPredictor

    rows = [(f"macro:{c}", macro[c]["mean_acc"]) for c in list(macro)[:30]]
    csv = write_csv(tmp_path / "t.csv", rows)
    p = tmp_path / "p.json"
    rc, out, err = run(capsys, "accuracy", "fit", csv, "--space", "nas-bench-macro", "-o", p)
    assert rc == 0, err
    assert json.loads(p.read_text())["settings"]["space"] == "nas-bench-macro"
    with pytest.raises(HwnasError, match="of space 'nas-bench-macro', not of 'mobilenetv2'"):
        AccuracyPredictor.load(p, space="mobilenetv2")
    one_line_error(capsys, "score", "mbv2-0.5", "--estimator", f"predictor:{p}", "--space",
                   "mobilenetv2", fragments=("nas-bench-macro",))
    # and fitting macro archs as another space's is refused too
    one_line_error(capsys, "accuracy", "fit", csv, "--space", "mobilenetv2",
                   fragments=("is not of space 'mobilenetv2'",))


# ---- the predictor ----------------------------------------------------------------------------------

def _subset(k: int, seed: int):
    from hwnas.accuracy_sources.results import Results, read_results

    res = read_results(MACRO)
    rng = np.random.default_rng(seed)
    tr = set(rng.choice(len(res.rows), k, replace=False).tolist())
    rows = [r for i, r in enumerate(res.rows) if i in tr]
    rest = [r for i, r in enumerate(res.rows) if i not in tr]
    return res, Results(res.path, res.kind, res.sha256, rows, {r.arch: res.archs[r.arch] for r in rows}), rest


def test_predictor_is_deterministic_and_round_trips_as_data(tmp_path):
    from hwnas.accuracy_sources.predictor import AccuracyPredictor

    res, sub, rest = _subset(40, 1)
    archs = [res.archs[r.arch] for r in rest[:200]]
    a = AccuracyPredictor(sub, random_state=3).predict(archs, return_std=True)
    b = AccuracyPredictor(sub, random_state=3).predict(archs, return_std=True)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert np.all(a[1] >= 0) and np.all(np.isfinite(a[0]))
    p = AccuracyPredictor(sub, random_state=3)
    p.save(tmp_path / "p.json")
    d = json.loads((tmp_path / "p.json").read_text())
    assert "rows" in d and len(d["rows"]) == 40  # data, not a pickle
    q = AccuracyPredictor.load(tmp_path / "p.json")
    assert np.array_equal(q.predict(archs), a[0])
    assert q.settings()["source_predictor_sha256"]


def test_predictor_with_50_macro_archs_ranks_the_rest(capsys):
    """A real bound: MACs alone rank NAS-Bench-Macro at tau ~0.56 and the issue's plain ridge
    at ~0.77 for K = 50; a predictor that does not beat 0.6 has learned nothing useful."""
    from hwnas.accuracy_sources.predictor import AccuracyPredictor
    from hwnas.accuracy_sources.regressor import kendall_tau

    res, sub, rest = _subset(50, 0)
    pred = AccuracyPredictor(sub, random_state=0)
    p = pred.predict([res.archs[r.arch] for r in rest])
    assert kendall_tau(p, [r.accuracy for r in rest]) > 0.6
    cv = pred.cross_validate(5, 0)
    assert cv["folds"] == 5 and -1 <= cv["kendall_tau"] <= 1 and cv["mape_pct"] > 0


def test_accuracy_fit_prints_cross_validated_tau_and_mape(tmp_path, capsys, macro):
    rows = [(f"macro:{c}", macro[c]["mean_acc"]) for c in list(macro)[::200]]
    csv = write_csv(tmp_path / "t.csv", rows)
    rc, out, err = run(capsys, "accuracy", "fit", csv, "--json")
    assert rc == 0, err
    d = json.loads(out)
    assert d["cv"]["rows"] == len(rows) and math.isfinite(d["cv"]["kendall_tau"])
    assert d["cv"]["mape_pct"] > 0 and d["output"] is None
    rc, out, err = run(capsys, "accuracy", "fit", csv, "--model", "gp", "--folds", "3")
    assert rc == 0 and "Kendall tau" in out and "MAPE" in out and "3-fold" in out


def test_scoring_the_whole_benchmark_takes_seconds(tmp_path, capsys):
    import os

    from hwnas.macro import all_codes

    def cpu_s():  # this process's CPU time and its children's: what the work costs, whatever
        t = os.times()  # else runs on the machine (wall time grew to 41 s at load 6 here)
        return t.user + t.system + t.children_user + t.children_system

    f = tmp_path / "all.txt"
    f.write_text("# every network\n" + "\n".join(f"macro:{c}" for c in all_codes()) + "\n")
    t0 = cpu_s()
    rc, out, err = run(capsys, "score", "--archs-file", f, "--estimator", f"table:{MACRO}", "--json")
    assert rc == 0, err
    assert len(json.loads(out)) == 6561
    rc, out, err = run(capsys, "score", "--archs-file", f, "--estimator", f"predictor:{MACRO}")
    assert rc == 0, err
    lines = [x for x in out.splitlines() if not x.startswith("#")]
    assert len(lines) == 6561 and lines[0].split()[1] == "macro:00000000"
    # two calls: ~9 s of CPU in all on this 2-core VM (measured at load 6); 60 s is 6x that
    assert cpu_s() - t0 < 60


# ---- --archs-file ----------------------------------------------------------------------------------

def test_archs_file_batches_score_predict_and_arch_info(tmp_path, capsys, macro):
    codes = list(macro)[:3]
    f = tmp_path / "archs.txt"
    f.write_text(f"# three networks\n\nmacro:{codes[0]}\n  macro:{codes[1]}  # the second\n"
                 f"macro:{codes[2]}\n")
    rc, out, err = run(capsys, "score", "--archs-file", f, "--estimator", f"table:{MACRO}")
    assert rc == 0, err
    body = [x.split() for x in out.splitlines() if not x.startswith("#")]
    assert [b[1] for b in body] == [f"macro:{c}" for c in codes]
    assert [float(b[0]) for b in body] == pytest.approx([macro[c]["mean_acc"] for c in codes], abs=1e-4)
    rc, out, err = run(capsys, "score", f"macro:{codes[2]}", "--archs-file", f, "--estimator",
                       f"table:{MACRO}", "--json")
    d = json.loads(out)
    assert [x["spec"] for x in d] == [f"macro:{c}" for c in [codes[2], *codes]]
    assert [x["score"] for x in d] == [macro[c]["mean_acc"] for c in [codes[2], *codes]]

    rc, out, err = run(capsys, "arch", "info", "--archs-file", f, "--json")
    assert rc == 0, err
    d = json.loads(out)
    assert [x["params"] for x in d] == [macro[c]["params"] for c in codes]
    assert [x["macs"] for x in d] == [macro[c]["flops"] for c in codes]
    rc, out, err = run(capsys, "arch", "info", "--archs-file", f)
    assert [int(x.split()[0]) for x in out.splitlines()[1:]] == [macro[c]["params"] for c in codes]

    g = tmp_path / "mbv2.txt"
    g.write_text("mbv2-0.5@96\nmbv2-0.35@96 # small\n")
    rc, out, err = run(capsys, "predict", "--archs-file", g, "--device", "x86_64-2core-ref", "--json")
    assert rc == 0, err
    d = json.loads(out)
    assert [x["spec"] for x in d] == ["mbv2-0.5@96", "mbv2-0.35@96"]
    assert d[0]["predicted_ms"] > d[1]["predicted_ms"] > 0
    rc, out2, err = run(capsys, "predict", "mbv2-0.5@96", "--device", "x86_64-2core-ref", "--json")
    assert json.loads(out2)["predicted_ms"] == pytest.approx(d[0]["predicted_ms"])
    rc, out, err = run(capsys, "predict", "--archs-file", g, "--device", "x86_64-2core-ref")
    assert [x.split()[1] for x in out.splitlines()[1:]] == ["mbv2-0.5@96", "mbv2-0.35@96"]


def test_archs_file_bad_input(tmp_path, capsys):
    one_line_error(capsys, "score", "--archs-file", tmp_path / "none.txt", "--estimator",
                   f"table:{MACRO}", fragments=("no such file",))
    one_line_error(capsys, "arch", "info", "--archs-file", tmp_path, fragments=("is a directory",))
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    one_line_error(capsys, "score", "--archs-file", tmp_path / "empty.txt", "--estimator",
                   f"table:{MACRO}", fragments=("lists none",))


# ---- the search -----------------------------------------------------------------------------------

@pytest.fixture
def macro_device(home):
    """Device 'synmacro': a synthetic latency table of the nas-bench-macro space at 32 px."""
    return synthetic_table("nas-bench-macro", "synmacro")


def test_search_with_accuracy_from_the_table(home, macro_device, capsys, macro):
    import optuna

    from hwnas.macro import macro_code
    from hwnas.runs import load_run, read_rows

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    rc, out, err = run(capsys, "search", "--space", "nas-bench-macro", "--device", macro_device,
                       "--name", "tab", "--trials", "6", "-r", "32", "--accuracy", f"table:{MACRO}",
                       "--sampler", "random", "-q")
    assert rc == 0, err
    run_ = load_run("tab")
    rows = [r for r in read_rows(run_.path / "trials.csv") if r["state"] == "COMPLETE"]
    assert len(rows) == 6
    from hwnas.arch import parse_string

    for r in rows:
        code = macro_code(parse_string(r["arch"]))
        assert code is not None and r["table_acc"] == pytest.approx(macro[code]["mean_acc"], abs=1e-9)
    cfg = json.loads((run_.path / "config.json").read_text())
    assert cfg["accuracy_settings"]["sha256"] == json.loads(json.dumps(
        __import__("hwnas.accuracy_sources.results", fromlist=["x"]).sha256_of(MACRO)))
    assert cfg["accuracy_settings"]["estimator"] == "table"
    assert not (run_.path / "accuracy_cache.json").exists()


def test_a_block_choice_no_measured_arch_has_is_predicted_not_refused():
    """K measured archs of a large space need not hold every choice: an arch with a choice
    none of them has (here k5e6, the Macro digit 2) is predicted from its other features
    (one-hot and counts of the unseen choice left out), not refused as 'another space'."""
    from hwnas.accuracy_sources.predictor import AccuracyPredictor
    from hwnas.accuracy_sources.results import Results, read_results

    res = read_results(MACRO)
    rows = [r for r in res.rows if "2" not in r.spec.removeprefix("macro:")][:30]
    assert len(rows) == 30
    sub = Results(res.path, res.kind, res.sha256, rows, {r.arch: res.archs[r.arch] for r in rows})
    p = AccuracyPredictor(sub, random_state=0)
    unseen = [res.archs[r.arch] for r in res.rows if r.spec.removeprefix("macro:").count("2") >= 3][:5]
    mean, std = p.predict(unseen, return_std=True)
    assert len(unseen) == 5 and np.all(np.isfinite(mean)) and np.all(std >= 0)

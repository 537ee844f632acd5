"""config.json: one :class:`hwnas.runs.RunConfig` writes it and reads it back; runs written
before (fewer keys, the score in a column "accuracy") still read; a damaged one is one line."""

from __future__ import annotations

import json

import pytest

from hwnas.errors import HwnasError
from hwnas.runs import CONFIG_FILE, RunConfig, read_config

IDENT = {"space": "tiny", "space_sha1": "0123456789ab", "device": "d", "resolution": 32,
         "objectives": ["accuracy", "latency"], "latency_budget_ms": None, "max_params": None,
         "accuracy": "zero-cost", "data": "digits", "classes": 10, "precision": "fp32",
         "supernet_metric": "accuracy"}


def full_config() -> RunConfig:
    return RunConfig(
        identity=IDENT, settings={"space": "tiny", "trials": 20, "objectives": ["accuracy"]},
        **IDENT, storage=None, storage_resolved="/x/journal.log", study_name="r", population=10,
        created="2024-01-01T00:00:00+0000", updated="2024-01-02T00:00:00+0000",
        versions={"python": "3.11.0"}, injected_estimators=False, latency_fn="m.lat",
        accuracy_fn="m.acc", score_column="naswot_score",
    ).with_info({"accuracy_estimator": "naswot", "device_provenance": {"cpu_model": "x"},
                 "latency_statistic": "min", "latency_precision": "fp32",
                 "something_new": [1, 2]})


def test_written_then_read_is_equal(tmp_path):
    cfg = full_config()
    assert cfg.extra == {"something_new": [1, 2]}  # an unknown info key is kept, not dropped
    p = cfg.write(tmp_path)
    assert p == tmp_path / CONFIG_FILE
    back = RunConfig.read(tmp_path)
    assert back == cfg
    assert RunConfig.read(p) == cfg == read_config(p)
    # the file is plain JSON, None left out; the mapping view is that object
    d = json.loads(p.read_text())
    assert d == dict(back) and "storage" not in d and d["identity"]["latency_budget_ms"] is None
    assert back["device_provenance"]["cpu_model"] == "x" and back.get("storage") is None
    assert back.get("something_new") == [1, 2] and back.score == "naswot_score"


def test_an_old_config_without_the_new_keys_still_reads(tmp_path):
    # as runs were written before the score column, precision, supernet metric, storage_resolved
    old = {"identity": {"space": "tiny", "device": "d", "resolution": 32,
                        "objectives": ["accuracy", "latency"], "accuracy": "zero-cost"},
           "space": "tiny", "device": "d", "resolution": 32, "accuracy": "zero-cost",
           "objectives": ["accuracy", "latency"], "study_name": "r", "storage": None}
    (tmp_path / CONFIG_FILE).write_text(json.dumps(old))
    cfg = RunConfig.read(tmp_path)
    assert cfg.score_column is None and cfg.precision is None and cfg.extra == {}
    assert cfg.score == "naswot_score"  # named from the estimator, as load_run's columns are
    assert cfg.get("device", "?") == "d" and cfg.get("classes", "?") == "?"
    assert RunConfig.from_json({}).to_json() == {}


@pytest.mark.parametrize("text,field", [
    ("[1]", "a JSON object"),
    ('{"resolution": "32"}', "resolution: must be a positive integer"),
    ('{"identity": {"objectives": "accuracy"}}', "identity.objectives: must be a list"),
    ('{"identity": 3}', "identity: must be an object"),
    ('{"score_column": "accuracy"}', "score_column: must be a score column name"),
    ('{"injected_estimators": "no"}', "injected_estimators: must be true or false"),
    ('{"space": ', "not valid JSON"),
    (b'{"space": "\xff"}', "not valid JSON"),
])
def test_a_malformed_config_is_one_line_naming_the_field(tmp_path, text, field):
    p = tmp_path / CONFIG_FILE
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(HwnasError) as e:
        RunConfig.read(p)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(p)) and field in msg, msg

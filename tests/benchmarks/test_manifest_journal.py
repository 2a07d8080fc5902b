"""benchmarks/manifest_journal.py: both bookkeeping schemes leave the manifest a complete run writes."""

import json

from benchmarks.manifest_journal import _settings, journal, main, rewrite_every_shard
from drkit.reinforcement.journal import JOURNAL


def test_both_schemes_end_with_the_same_manifest(tmp_path):
    settings = _settings(tmp_path)
    for fn in (rewrite_every_shard, journal):
        (tmp_path / fn.__name__).mkdir()
        fn(tmp_path / fn.__name__, settings, 40)
    a = json.loads((tmp_path / "rewrite_every_shard" / "manifest.json").read_text())
    b = json.loads((tmp_path / "journal" / "manifest.json").read_text())
    assert [s["index"] for s in a["shards"]] == list(range(40)) and a["shards"] == b["shards"]
    assert not (tmp_path / "journal" / JOURNAL).exists()


def test_the_script_writes_its_json(tmp_path):
    main(["--shards", "20", "--json", str(tmp_path / "r.json")])
    rows = json.loads((tmp_path / "r.json").read_text())["results"]
    assert [(r["shards"], r["method"]) for r in rows] == [(20, "rewrite every shard"), (20, "journal")]

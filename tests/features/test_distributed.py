from mstar.features.distributed import DistInfo, gather_rows, init_distributed, shard


def test_shard_partitions_and_balances():
    weights = [100, 5, 60, 40, 0, 30, 30]
    parts = [shard(weights, r, 3) for r in range(3)]
    assert sorted(i for p in parts for i in p) == list(range(len(weights)))
    loads = [sum(weights[i] for i in p) for p in parts]
    assert max(loads) - min(loads) <= 30
    assert parts == [shard(weights, r, 3) for r in range(3)]  # deterministic
    assert shard(weights, 0, 1) == list(range(len(weights)))


def test_single_process_defaults(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info = init_distributed()
    assert info == DistInfo() and not info.active
    rows = [{"slide": "a"}]
    assert gather_rows(rows, info) is rows

"""What the analyses share: the low-noise warning, clear errors, cached jobs."""

from __future__ import annotations

import json

import pytest

from tests.bench.analyses.support import invoke, write_card


def test_a_low_noise_card_is_warned_about(tmp_path):
    card = write_card(tmp_path, "low", t_max=0.05)
    with pytest.warns(UserWarning, match="trained on t <= 0.05 only"):
        result = invoke(["generation", "-n", "2", "--denoiser", str(card), "--out", str(tmp_path / "gen")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "gen" / "summary.json").read_text())
    assert summary["methods"]["low"]["t_max"] == 0.05 and "never saw" in summary["warnings"][0]
    assert "WARNING" in (tmp_path / "gen" / "report.md").read_text()


def test_bad_input_is_a_clear_error(cards, tmp_path):
    unknown = invoke(["boltzmann", "--quick", "--temperature", "300", "--out", str(tmp_path / "x")])
    assert unknown.exit_code == 2 and "No such option" in unknown.output
    empty = invoke(["boltzmann", "--quick", "--max-atoms", "3", "--out", str(tmp_path / "x")])
    assert empty.exit_code != 0 and "none of its 0 molecules passes the flexibility filter" in str(empty.exception)
    burn = invoke(["boltzmann", "--quick", "--mcmc-burn-in", "400", "--out", str(tmp_path / "x")])
    assert "burn-in must be smaller than the chain" in str(burn.exception)
    none = invoke(["phases", "--quick", "--out", str(tmp_path / "x")])
    assert "needs at least one denoiser" in str(none.exception)
    twice = invoke(["generation", "-n", "1", "--denoiser", str(cards[0]), "--denoiser", str(cards[0]),
                    "--out", str(tmp_path / "x")])
    assert "card key 'tiny-e1' is used by another card" in str(twice.exception)


def _minus_one(x: int) -> dict:
    return {"value": -1}


def _square(x: int) -> dict:
    if x == 3:
        raise RuntimeError("chain 3 broke")
    return {"value": x * x}


@pytest.mark.parametrize("threads", [0, 2], ids=["inline", "executor"])
def test_cached_jobs_store_each_chain_and_a_failure_stops_none_of_the_others(tmp_path, threads):
    from concurrent.futures import ThreadPoolExecutor

    from bench.analyses.common import cached_jobs
    from bench.errors import EdmBenchError
    from bench.store import ResultStore

    store = ResultStore(tmp_path / "s.sqlite")
    jobs = [(f"k{x}", _square, (x,)) for x in range(6)]
    executor = ThreadPoolExecutor(threads) if threads else None
    # one rule with or without an executor: every other chain finishes and is stored first
    with pytest.raises(EdmBenchError, match=r"1 of 6 demo jobs failed \(the other 5 are stored.*chain 3 broke"):
        cached_jobs(store, "demo", jobs, executor)
    assert store.get("demo", "k5") == {"value": 25} and store.get("demo", "k3") is None
    # the rerun computes only what is missing (here: as -1)
    docs = cached_jobs(store, "demo", [(key, _minus_one, args) for key, _, args in jobs], executor)
    expected = [0, 1, 4, -1, 16, 25]
    assert [d["value"] for d in docs] == expected

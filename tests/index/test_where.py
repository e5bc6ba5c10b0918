"""Filters: how expressions read, and that filtered search returns exactly the top k of the
matching items (against brute force), however selective the filter."""

import numpy as np
import pytest
from where_reference import holds

from clipforge import Collection
from clipforge.errors import InputError
from clipforge.index import where
from clipforge.index.query import EXACT_SUBSET_MAX
from clipforge.index.store import NewItem
from clipforge.index.values import parse_time


@pytest.mark.parametrize("text, key, op, values", [
    ("taken>=2023-06-01", "taken", ">=", ("2023-06-01",)),
    ("camera ~ Pixel", "camera", "~", ("Pixel",)),
    ("shard=7", "shard", "=", ("7",)),
    ("license in cc0, cc-by", "license", "in", ("cc0", "cc-by")),
    ("license not in cc0", "license", "not in", ("cc0",)),
    ("gps exists", "gps", "exists", ()),
    ("gps missing", "gps", "missing", ()),
    ("name!~*.png", "name", "!~", ("*.png",)),
    ("title = a = b", "title", "=", ("a = b",)),
])
def test_expressions(text, key, op, values):
    assert where.parse(text) == [where.Condition(key, op, values)]


@pytest.mark.parametrize("bad", ["", "   ", "taken", ">=3", "x in", "x in a,,b", "x exists now", "k="])
def test_bad_expressions_are_one_clear_error(bad):
    with pytest.raises(InputError, match="filter"):
        where.parse(bad)


def test_a_dict_means_equalities_and_lists_mean_one_of():
    assert where.parse({"shard": 7, "ok": True, "lic": ["a", "b"]}) == [
        where.Condition("shard", "=", ("7",)), where.Condition("ok", "=", ("true",)),
        where.Condition("lic", "in", ("a", "b"))]


def test_times_read_in_every_common_form():
    assert parse_time("2023-06-01") == parse_time("2023:06:01 00:00:00") == parse_time("2023-06-01T00:00Z")
    assert parse_time("2023-06-01T02:00:00+02:00") == parse_time("2023-06-01")
    assert parse_time("2023-13-01") is None and parse_time("yesterday") is None


def _random_metadata(rng, i: int) -> dict:
    meta = {"shard": int(rng.integers(0, 1000)), "camera": str(rng.choice(["Pixel 7", "Canon EOS R5", "iPhone 15"])),
            "taken": f"2023-{rng.integers(1, 13):02d}-{rng.integers(1, 28):02d}T12:00:00",
            "score": float(rng.normal()), "name": f"img_{i}.{rng.choice(['jpg', 'png'])}", "code": str(i % 50)}
    if i % 3:
        meta["gps"] = "52.1,4.3"
    return meta


@pytest.fixture(scope="module")
def filtered(tmp_path_factory, tiny_clip_spec):
    """4,000 text items with random metadata, and their vectors."""
    rng = np.random.default_rng(0)
    coll = Collection.create(tmp_path_factory.mktemp("filters") / "c", model=tiny_clip_spec)
    vectors = rng.normal(size=(4000, coll.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    metadata = [_random_metadata(rng, i) for i in range(4000)]
    with coll.writing():
        first = coll.append_vectors(vectors)
        coll.commit([NewItem("text", f"text:id:{i}", first + i, text=f"t{i}", metadata=metadata[i])
                     for i in range(4000)])
    yield coll, vectors, metadata
    coll.close()


FILTERS = [
    ["shard=7"], ["shard<10"], ["shard>=500", "camera~pixel"], ["taken>=2023-06-01", "taken<2023-07-01"],
    ["camera in Pixel 7,iPhone 15"], ["camera not in Pixel 7"], ["gps missing"], ["gps exists", "shard!=3"],
    ["name~*.png"], ["name!~*.png", "score>1.5"], ["code=07"], {"code": "7"}, {"shard": [1, 2, 3]},
    {"shard": []}, [{"shard": []}, "gps exists"], ["camera~pixel", {"code": "7"}], ["shard in 1e999,7,-1e999"],
    ["shard<1e999", "shard>=990"],
]


@pytest.mark.parametrize("conditions", FILTERS, ids=[str(f) for f in FILTERS])
def test_filtered_search_is_the_top_k_of_the_matching_items(filtered, conditions):
    coll, vectors, metadata = filtered
    parsed = where.parse(conditions)
    matching = np.array([i for i, meta in enumerate(metadata) if all(holds(meta, c) for c in parsed)])
    query = vectors[11] + 0.7 * vectors[2222]
    query /= np.linalg.norm(query)
    got = coll.search_vectors(query, k=10, target="text", where=conditions)[0]
    stored = coll.read_vectors(np.arange(4000))  # what is ranked: the float16 copies
    expected = matching[np.argsort(-(stored[matching] @ query), kind="stable")[:10]] if len(matching) else []
    assert [int(h.text[1:]) for h in got] == list(expected)
    assert got.has_more == (len(matching) > 10)


def test_a_broad_filter_goes_through_the_index_and_still_fills_the_page(filtered, monkeypatch):
    coll, vectors, metadata = filtered
    monkeypatch.setattr("clipforge.index.query.EXACT_SUBSET_MAX", 100)  # make 'broad' cheap to reach
    got = coll.search_vectors(vectors[5], k=25, target="text", where="shard>=100")[0]
    assert len(got) == 25 and all(metadata[int(h.text[1:])]["shard"] >= 100 for h in got)
    assert EXACT_SUBSET_MAX >= 1000


def test_pages_exclusions_and_a_score_floor(filtered):
    coll, vectors, _ = filtered
    query = vectors[99]
    every = coll.search_vectors(query, k=30, target="text")[0]
    second = coll.search_vectors(query, k=10, offset=10, target="text")[0]
    assert [h.id for h in second] == [h.id for h in every[10:20]] and second.has_more
    without = coll.search_vectors(query, k=5, target="text", exclude=[every[0].id, every[2].id])[0]
    assert [h.id for h in without] == [every[i].id for i in (1, 3, 4, 5, 6)]
    floor = every[4].score
    assert [h.id for h in coll.search_vectors(query, k=30, target="text", min_score=floor)[0]] == \
        [h.id for h in every[:5]]


def test_no_match_is_an_empty_page(filtered):
    coll, vectors, _ = filtered
    got = coll.search_vectors(vectors[0], k=5, target="text", where="shard>5000")[0]
    assert got == [] and not got.has_more


def test_a_list_of_many_values_is_one_condition(filtered):
    """SQLite caps the parameters of a statement (32,766): a long list must not need one each."""
    coll, vectors, metadata = filtered
    wanted_shards = list(range(0, 40_000, 3))
    names = ",".join(f"img_{i}.jpg" for i in range(0, 4000, 2))
    got = coll.search_vectors(vectors[7], k=10, target="text", where=[{"shard": wanted_shards}, f"name in {names}"])[0]
    matching = np.array([i for i, m in enumerate(metadata) if m["shard"] % 3 == 0 and m["name"].endswith(".jpg")
                         and i % 2 == 0])
    stored = coll.read_vectors(np.arange(4000))
    assert [int(h.text[1:]) for h in got] == list(matching[np.argsort(-(stored[matching] @ vectors[7]))[:10]])

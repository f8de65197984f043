"""GET /jobs decoded item by item: the same jobs as json.loads gives, without all of them in memory at once."""

from __future__ import annotations

import copy
import json
import time
import tracemalloc
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dssr_slurm.rest.itemwise import decode_itemwise
from dssr_slurm.rest.transport import _response
from dssr_slurm.rest.versions import adapter_for

from .samples import ROOT, VERSIONS, load

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)
#: objects like slurmrestd's answers: "jobs" absent, of any kind, or (mostly) an array of anything
DOCUMENTS = st.dictionaries(st.sampled_from(["meta", "errors", "jobs", "warnings", "x"]), JSON, max_size=5) | st.builds(
    lambda jobs, rest: {**rest, "jobs": jobs},
    st.lists(JSON, max_size=6),
    st.dictionaries(st.sampled_from(["meta", "errors"]), JSON, max_size=2),
)
LAYOUTS = st.sampled_from([{}, {"indent": 1}, {"separators": (",", ":")}, {"indent": "\t", "ensure_ascii": False}])


def convert(item: Any) -> Any:
    """A conversion that keeps some items (wrapped, to tell them from the raw ones) and leaves out the others."""
    return None if isinstance(item, (int, float)) and not isinstance(item, bool) else ("kept", item)


def expected(document: Any) -> Any:
    if isinstance(document, dict) and isinstance(document.get("jobs"), list):
        jobs = [c for c in map(convert, document["jobs"]) if c is not None]
        return {**document, "jobs": jobs}
    return document


@settings(max_examples=300, deadline=None)
@given(document=DOCUMENTS | JSON, layout=LAYOUTS, pad=st.sampled_from(["", " ", "\n\t "]))
def test_a_document_decodes_as_json_loads_decodes_it_with_the_items_converted(
    document: Any, layout: dict[str, Any], pad: str
) -> None:
    text = pad + json.dumps(document, **layout) + pad
    assert decode_itemwise(text, "jobs", convert) == expected(json.loads(text))


@settings(max_examples=400, deadline=None)
@given(document=DOCUMENTS, cut=st.integers(min_value=0), junk=st.sampled_from(["", ",", "]", "}", "x", "{", '"', ":1"]))
def test_broken_json_is_refused_as_json_loads_refuses_it(document: Any, cut: int, junk: str) -> None:
    text = json.dumps(document)
    broken = text[: cut % (len(text) + 1)] + junk
    try:
        wanted = json.loads(broken)
    except ValueError:
        with pytest.raises(json.JSONDecodeError):
            decode_itemwise(broken, "jobs", convert)
    else:
        assert decode_itemwise(broken, "jobs", convert) == expected(wanted)


def test_an_error_of_the_conversion_is_not_taken_for_broken_json() -> None:
    def broken(item: Any) -> Any:
        raise ValueError("a bug in the conversion")

    with pytest.raises(ValueError, match="a bug in the conversion"):
        _response(200, b'{"jobs": [{"job_id": 1}]}', ("jobs", broken))


@pytest.mark.skipif(not VERSIONS, reason="no recorded samples (run tests/slurm_rest/capture_samples.py)")
@pytest.mark.parametrize("version", VERSIONS)
def test_every_versions_recorded_listing_gives_the_same_jobs_item_by_item(version: str) -> None:
    adapter, now = adapter_for(version), time.time()
    text = json.dumps(load(version, "jobs").body, indent=1)
    whole = adapter.queue(json.loads(text), now)
    itemwise = _response(200, text.encode(), ("jobs", lambda item: adapter.queued(item, now))).body["jobs"]
    assert itemwise == whole and whole


@pytest.mark.skipif(not (ROOT / "v0.0.42").exists(), reason="no recorded v0.0.42 samples")
def test_a_thousand_job_listing_never_holds_all_its_jobs_objects_at_once() -> None:
    # slurmrestd v0.0.42 (Slurm 24.11) answers about 6.7 kB per job
    adapter, now = adapter_for("v0.0.42"), time.time()
    body = load("v0.0.42", "jobs").body
    one = next(job for job in body["jobs"] if adapter.queued(job, now) is not None)
    jobs = []
    for i in range(1000):
        job = copy.deepcopy(one)
        job["job_id"], job["name"] = 100000 + i, f"jarvice_scale-{i}"
        jobs.append(job)
    data = json.dumps({**body, "jobs": jobs}).encode()
    del jobs

    def peak(decode: Any) -> tuple[int, Any]:
        tracemalloc.start()
        try:
            result = decode()
            return tracemalloc.get_traced_memory()[1], result
        finally:
            tracemalloc.stop()

    whole_peak, whole = peak(lambda: adapter.queue(json.loads(data), now))
    itemwise_peak, itemwise = peak(
        lambda: _response(200, data, ("jobs", lambda item: adapter.queued(item, now))).body["jobs"]
    )
    assert itemwise == whole and len(whole) == 1000
    print(
        f"1,000 jobs, {len(data) / 1e6:.1f} MB: peak {whole_peak / 1e6:.1f} MB decoded whole, "
        f"{itemwise_peak / 1e6:.1f} MB item by item"
    )
    # what is left is the answer's text (and bytes) and the 1,000 jobs kept, not the decoded objects
    assert itemwise_peak < whole_peak / 2, (itemwise_peak, whole_peak)

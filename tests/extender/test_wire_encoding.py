"""The extender's fast encoders give the bytes orjson gives for the same objects."""

import numpy as np
import orjson
from hypothesis import given
from hypothesis import strategies as st

from scheduler.extender import wire


@given(st.lists(st.tuples(st.text(min_size=1, max_size=20), st.integers(0, wire.MAX_EXTENDER_PRIORITY)), max_size=50))
def test_scaled_scores_encode_exactly_as_a_host_priority_list(pairs):
    hosts = [h for h, _ in pairs]
    scores = np.array([s for _, s in pairs], dtype=np.int64)
    assert wire.encode_scaled(hosts, scores) == orjson.dumps([{"Host": h, "Score": s} for h, s in pairs])
    assert wire.encode_scaled(hosts, scores) == wire.encode_host_priorities(pairs)

"""UTC datetimes on SQLite: the one-step bind gives exactly the text SQLAlchemy's DATETIME would store."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from paymux.db.base import UTCDateTime

DIALECT = sqlite.dialect()
FAST = UTCDateTime().bind_processor(DIALECT)
TWO_STEP = sqlite.DATETIME().bind_processor(DIALECT)

zones = st.sampled_from(
    [dt.UTC, dt.timezone(dt.timedelta(hours=3)), dt.timezone(dt.timedelta(hours=-9, minutes=-30))]
)


@given(st.datetimes(min_value=dt.datetime(1900, 1, 2), max_value=dt.datetime(9998, 12, 30), timezones=zones))
def test_fast_bind_is_the_two_step_bind(value: dt.datetime) -> None:
    slow = TWO_STEP(UTCDateTime().process_bind_param(value, DIALECT))
    assert FAST(value) == slow
    back = UTCDateTime().process_result_value(
        sqlite.DATETIME().result_processor(DIALECT, None)(slow), DIALECT
    )
    assert back == value


def test_none_and_naive() -> None:
    assert FAST(None) is None
    with pytest.raises(ValueError, match="naive"):
        FAST(dt.datetime(2026, 1, 1))


@given(
    st.lists(
        st.datetimes(min_value=dt.datetime(1900, 1, 2), max_value=dt.datetime(9998, 12, 30), timezones=zones),
        min_size=1,
        max_size=5,
    ),
    st.lists(st.integers(min_value=0, max_value=4), max_size=20),
)
def test_repeated_values_give_their_own_text(values: list[dt.datetime], order: list[int]) -> None:
    """The processor keeps the last value's text: repeats, and values in between, are still right."""
    process = UTCDateTime().bind_processor(DIALECT)
    for i in order + order[::-1]:
        v = values[i % len(values)]
        assert process(v) == TWO_STEP(UTCDateTime().process_bind_param(v, DIALECT))

"""Phone normalisation and masking; the SQL masking function agrees with the Python one."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccanalytics.core.privacy import InvalidPhone, mask_phone, mask_phones_in_text, normalize_phone


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+380671234567", "+380671234567"),
        ("0671234567", "+380671234567"),
        ("067 123-45-67", "+380671234567"),
        ("(067) 123 45 67", "+380671234567"),
        ("380671234567", "+380671234567"),
        ("671234567", "+380671234567"),
        ("+48 601 234 567", "+48601234567"),
        ("anonymous", None),
        ("  Unknown ", None),
        (None, None),
        ("1234", None.__class__),  # too short: error
        ("DROP TABLE", None.__class__),
        ("٠٦٧١٢٣٤٥٦٧", None.__class__),  # Arabic-Indic digits are not a phone number here
    ],
)
def test_normalize_phone(raw, expected):
    if expected is None.__class__:
        with pytest.raises(InvalidPhone):
            normalize_phone(raw)
    else:
        assert normalize_phone(raw) == expected


def test_mask_phone_keeps_prefix_and_last_two_digits():
    assert mask_phone("+380671234567") == "+38067*****67"
    assert mask_phone("+48601234567") == "+48601****67"
    assert mask_phone("+38067") == "+38*67"
    assert mask_phone("1234") == "****"
    assert mask_phone(None) is None


def test_phones_in_free_text_are_masked():
    text = "Мій номер +380 67 123 45 67, або 067-765-43-21. Замовлення ORD-204518, 4 шини по 4150 грн."
    masked = mask_phones_in_text(text)
    assert "123 45" not in masked and "765-43" not in masked
    assert "ORD-204518" in masked and "4150" in masked
    assert masked.count("67") >= 1


PHONES = st.one_of(
    st.from_regex(r"\+380(50|63|66|67|68|73|93|95|96|97|98|99)[0-9]{7}", fullmatch=True),
    st.from_regex(r"\+[0-9]{5,19}", fullmatch=True),
    st.from_regex(r"[0-9]{5,19}", fullmatch=True),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(phones=st.lists(PHONES, min_size=1, max_size=20))
def test_sql_mask_matches_python_mask(engine, phones):
    with engine.connect() as conn:
        masked = (
            conn.execute(
                sa.text(
                    "SELECT cca_mask_phone(p) FROM unnest(CAST(:p AS text[])) WITH ORDINALITY AS t(p, i) ORDER BY i"
                ),
                {"p": phones},
            )
            .scalars()
            .all()
        )
    assert masked == [mask_phone(p) for p in phones]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.none(),
            st.from_regex(r"\+\d{3,16}", fullmatch=True),
            st.from_regex(r"\d{1,14}", fullmatch=True),
            st.text(max_size=12),
        ),
        max_size=20,
    )
)
def test_store_masking_matches_mask_phone(values):
    import polars as pl

    from ccanalytics.analytics.store import _mask_callers

    frame = pl.DataFrame({"caller_id": values}, schema={"caller_id": pl.String})
    assert _mask_callers(frame).get_column("caller_id").to_list() == [mask_phone(v) for v in values]


def test_masking_text_leaves_call_ids_alone():
    from ccanalytics.core.privacy import mask_phones_in_text

    text = "дзвінок 0f1e2d3c-4b5a-6978-8a9b-380671234567, клієнт +380671234567"
    assert mask_phones_in_text(text) == "дзвінок 0f1e2d3c-4b5a-6978-8a9b-380671234567, клієнт +38067*****67"


def test_personal_fields_of_tool_arguments_are_masked_at_any_depth():
    from ccanalytics.core.privacy import mask_personal

    args = {
        "items": [{"sku": "NOK-1", "price": 4150, "name": "Nokian Hakkapeliitta 10"}],
        "customer": {"first_name": "Олег", "email": "oleg@shop.example", "phone": "0671234567"},
        "customer_name": "Мар'яна Коваль",
        "note": "передзвоніть на +380 50 123 45 67",
        "address": "вул. Шевченка, 5",  # a pickup point's, not a person's
        "recipient": "",
    }
    assert mask_personal(args) == {
        "items": [{"sku": "NOK-1", "price": 4150, "name": "Nokian Hakkapeliitta 10"}],
        "customer": {"first_name": "О***", "email": "o***", "phone": mask_phone("0671234567")},
        "customer_name": "М***",
        "note": "передзвоніть на +380 50 *** ** 67",
        "address": "вул. Шевченка, 5",
        "recipient": "",
    }
    assert mask_personal([1, None, True]) == [1, None, True]


def test_a_plain_name_inside_a_person_object_is_masked_but_a_product_name_is_not():
    from ccanalytics.core.privacy import mask_personal

    result = {
        "customer": {"name": "Мар'яна Коваль", "phone": "+380660965881"},
        "recipient": {"name": "Олег", "city": "Київ"},
        "items": [{"name": "Nokian Hakkapeliitta 10"}],
        "contact": [{"name": "Ірина"}],
    }
    assert mask_personal(result) == {
        "customer": {"name": "М***", "phone": "+38066*****81"},
        "recipient": {"name": "О***", "city": "Київ"},
        "items": [{"name": "Nokian Hakkapeliitta 10"}],
        "contact": [{"name": "І***"}],
    }


def test_only_admins_see_personal_data_as_recorded():
    from ccanalytics.core.privacy import for_reader, sees_personal_data

    args = {"phone": "+380660965881", "note": "передзвоніть на 0671234567"}
    assert sees_personal_data("admin") and for_reader(args, "admin") is args
    for role in ("analyst", "service", None):
        assert not sees_personal_data(role)
        assert for_reader(args, role) == {"phone": "+38066*****81", "note": "передзвоніть на 06******67"}

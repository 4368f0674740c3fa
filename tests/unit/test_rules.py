"""``kafka_ingest.rules``: the public names topics outside the core use are the core's own helpers."""

from __future__ import annotations

from kafka_ingest import rules, specs
from kafka_ingest.publish import masking as pan
from kafka_ingest.topics import _rules


def test_every_public_name_is_the_helper_the_core_topics_use() -> None:
    originals = {**vars(_rules), "mask_card_number": pan.mask_card_number, "Rule": specs.Rule}

    assert {name: getattr(rules, name) is originals[name] for name in rules.__all__} == dict.fromkeys(
        rules.__all__, True
    )


def test_no_private_name_is_exported() -> None:
    assert [name for name in rules.__all__ if name.startswith("_")] == []

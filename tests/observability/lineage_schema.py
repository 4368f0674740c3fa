"""Checks an OpenLineage event (as JSON) against the OpenLineage JSON schema (spec 2-0-2).

openlineage-python 1.54 ships the spec as generated models, not as JSON Schema files, and the
tests have no network; so the parts of the spec our events use are written out here, from
https://openlineage.io/spec/2-0-2/OpenLineage.json and the facet schemas of the facets we emit
(schema, dataQualityAssertions, outputStatistics, errorMessage). Every facet, ours and Airflow's
included, must be a valid base facet (``_producer`` and ``_schemaURL`` URIs). The standard facets'
``_schemaURL`` must also be the one the installed client's models declare.
"""

from __future__ import annotations

from typing import Any

import jsonschema

_URI = {"type": "string", "format": "uri"}
_FACET = {
    "type": "object",
    "properties": {"_producer": _URI, "_schemaURL": _URI},
    "required": ["_producer", "_schemaURL"],
}
_FACETS = {"type": "object", "additionalProperties": {"$ref": "#/$defs/Facet"}}
_FIELD = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "type": {"type": "string"},
        "description": {"type": ["string", "null"]},
        "fields": {"type": "array", "items": {"$ref": "#/$defs/SchemaField"}},
    },
    "required": ["name"],
}
_DATASET = {
    "type": "object",
    "properties": {"namespace": {"type": "string"}, "name": {"type": "string"}, "facets": _FACETS},
    "required": ["namespace", "name"],
}

EVENT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$defs": {
        "Facet": _FACET,
        "SchemaField": _FIELD,
        "InputDataset": {
            "allOf": [_DATASET],
            "properties": {
                "inputFacets": _FACETS,
                "facets": {
                    "type": "object",
                    "properties": {
                        "schema": {
                            "allOf": [_FACET],
                            "properties": {
                                "fields": {"type": "array", "items": {"$ref": "#/$defs/SchemaField"}}
                            },
                        }
                    },
                },
            },
        },
        "OutputDataset": {"allOf": [_DATASET], "properties": {"outputFacets": _FACETS}},
    },
    "type": "object",
    "properties": {
        "eventType": {"enum": ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]},
        "eventTime": {"type": "string", "format": "date-time"},
        "producer": _URI,
        "schemaURL": _URI,
        "run": {
            "type": "object",
            "properties": {"runId": {"type": "string", "format": "uuid"}, "facets": _FACETS},
            "required": ["runId"],
        },
        "job": {
            "type": "object",
            "properties": {"namespace": {"type": "string"}, "name": {"type": "string"}, "facets": _FACETS},
            "required": ["namespace", "name"],
        },
        "inputs": {"type": "array", "items": {"$ref": "#/$defs/InputDataset"}},
        "outputs": {"type": "array", "items": {"$ref": "#/$defs/OutputDataset"}},
    },
    "required": ["eventTime", "run", "job", "producer", "schemaURL"],
}

_ASSERTIONS = {
    "type": "object",
    "properties": {
        "assertions": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "assertion": {"type": "string"},
                    "success": {"type": "boolean"},
                    "column": {"type": ["string", "null"]},
                    "failures": {"type": "integer"},
                },
                "required": ["assertion", "success"],
            },
        }
    },
    "required": ["assertions"],
}
_OUTPUT_STATISTICS = {
    "type": "object",
    "properties": {
        "rowCount": {"type": "integer"},
        "size": {"type": "integer"},
        "fileCount": {"type": "integer"},
    },
}
_ERROR = {
    "type": "object",
    "properties": {"message": {"type": "string"}, "programmingLanguage": {"type": "string"}},
    "required": ["message", "programmingLanguage"],
}


def _standard_facets() -> dict[str, tuple[dict[str, Any], str]]:
    """Facet key -> (its schema, the ``_schemaURL`` the installed client declares)."""
    from openlineage.client.facet_v2 import (
        data_quality_assertions_dataset,
        error_message_run,
        output_statistics_output_dataset,
        schema_dataset,
    )

    return {
        "dataQualityAssertions": (
            _ASSERTIONS,
            data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet._get_schema(),
        ),
        "outputStatistics": (
            _OUTPUT_STATISTICS,
            output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet._get_schema(),
        ),
        "errorMessage": (_ERROR, error_message_run.ErrorMessageRunFacet._get_schema()),
        "schema": (
            {"type": "object", "required": ["fields"]},
            schema_dataset.SchemaDatasetFacet._get_schema(),
        ),
    }


def validate_event(event: dict[str, Any]) -> None:
    """Raises ``jsonschema.ValidationError`` (or AssertionError for a facet's schema URL)."""
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    jsonschema.validate(event, EVENT_SCHEMA, cls=jsonschema.Draft202012Validator, format_checker=checker)
    standard = _standard_facets()
    facet_maps = [event["run"].get("facets", {}), event["job"].get("facets", {})]
    for dataset in [*event.get("inputs", []), *event.get("outputs", [])]:
        facet_maps += [
            dataset.get("facets", {}),
            dataset.get("inputFacets", {}),
            dataset.get("outputFacets", {}),
        ]
    for facets in facet_maps:
        for key, facet in facets.items():
            if key in standard:
                schema, url = standard[key]
                jsonschema.validate(facet, schema)
                assert facet["_schemaURL"] == url, f"{key}: _schemaURL {facet['_schemaURL']} is not {url}"

"""Schemathesis against the JSON API, in-process (WSGI) with an admin token: requests generated from
docs' OpenAPI document (valid ones and invalid ones) never get a 500, valid-by-schema requests are not
refused, answers match their declared statuses, content types and schemas. Bounded: a few dozen
examples per operation, under a minute in all."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from ccanalytics.auth import users as auth
from ccanalytics.prompts import versions as prompts
from webapp import create_app

pytestmark = pytest.mark.timeout(300)

EXAMPLES = 15


ROOT = Path(__file__).resolve().parents[1]
schema = schemathesis.openapi.from_path(ROOT / "docs" / "openapi.json")  # a test keeps it current


class CurrentApp:
    """The WSGI app schemathesis calls: the running test's app (each test has its own database)."""

    app = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


CURRENT = CurrentApp()
schema.app = CURRENT


@pytest.fixture
def api(engine):
    """(app, headers): the admin app over a fresh database, and an admin token's header."""
    app = create_app({"ENGINE": engine, "TESTING": True})
    token = auth.create_token(engine, "admin", "fuzz")
    prompts.create_version(engine, "tire_agent", "Добрий день!", author="fuzz")
    CURRENT.app = app
    yield app, {"Authorization": f"Bearer {token}"}
    CURRENT.app = None


# 400/422 answers to schema-valid requests that no JSON Schema can foresee: facts of the database (a
# tenant that does not exist), rules across fields (a range too long, dates in the wrong order, weights
# summing to 1, the call processor's own test statuses) and the ingest's rules for a call log. Any other
# refusal of a schema-valid request fails the test: the document must declare what the server enforces.
SEMANTIC = re.compile(
    r"unknown tenant|the date range covers|the range has|is before date_from|is out of range: page"
    r"|status of the call processor's tests|status active belongs|weights|of one prompt|different versions"
    r"|same version|exclusion|not a known|does not exist|invalid_call_log|ended_at|before started_at"
)


@schemathesis.check
def schema_valid_requests_are_accepted(ctx, response, case):
    """Like schemathesis's positive_data_acceptance, but a 400/422 for a reason in SEMANTIC is allowed."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code not in (400, 413, 422):
        return None
    body = response.text
    if not SEMANTIC.search(body):
        raise AssertionError(f"a schema-valid request was refused: {response.status_code} {body[:300]}")
    return None


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms_to_its_openapi_document(case, api):
    _, headers = api
    case.call_and_validate(
        base_url="http://localhost/api/v1",
        headers=headers,
        excluded_checks=[positive_data_acceptance],
        additional_checks=[schema_valid_requests_are_accepted],
    )

"""The OpenAPI schema builds with no warning, documents this slice's paths and the error shape.

Other apps add their own paths: the checks here ask for a superset, never an exact list.
"""

from decimal import Decimal

import pytest
import yaml
from django.core.management import call_command

pytestmark = pytest.mark.django_db

SLICE_PATHS = {
    "/api/v1/health": {"get"},
    "/api/v1/auth/register": {"post"},
    "/api/v1/auth/token": {"post"},
    "/api/v1/auth/me": {"get"},
    "/api/v1/models": {"get"},
    "/api/v1/rooms": {"get", "post"},
    "/api/v1/rooms/{room_id}": {"get", "patch", "delete"},
    "/api/v1/rooms/{room_id}/agents": {"get", "post"},
    "/api/v1/rooms/{room_id}/agents/{agent_key}": {"get", "patch", "delete"},
}
HTTP_METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}


@pytest.fixture(scope="module")
def schema(tmp_path_factory, django_db_blocker) -> dict:
    """What `manage.py spectacular --validate --fail-on-warn` writes: it raises on any warning/error."""
    path = tmp_path_factory.mktemp("schema") / "schema.yml"
    with django_db_blocker.unblock():
        call_command("spectacular", validate=True, fail_on_warn=True, file=str(path))
    return yaml.safe_load(path.read_text())


def test_schema_has_this_slices_paths_with_exactly_their_methods(schema):
    for path, methods in SLICE_PATHS.items():
        assert path in schema["paths"], path
        assert set(schema["paths"][path]) & HTTP_METHODS == methods, path


def test_the_error_shape_is_a_component(schema):
    error = schema["components"]["schemas"]["Error"]
    assert {"detail", "code", "fields"} <= set(error["properties"])
    assert set(error["required"]) == {"detail", "code"}


def test_every_4xx_of_this_slice_uses_the_error_shape(schema):
    for path in SLICE_PATHS:
        for method, operation in schema["paths"][path].items():
            codes = [code for code in operation["responses"] if code.startswith("4")]
            if path != "/api/v1/health":
                assert codes, (method, path)
            for code in codes:
                ref = operation["responses"][code]["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/Error", (method, path, code)


def test_documented_errors_match_what_the_endpoints_answer(schema):
    paths = schema["paths"]
    assert "409" in paths["/api/v1/rooms/{room_id}/agents"]["post"]["responses"]
    assert "409" in paths["/api/v1/rooms/{room_id}/agents/{agent_key}"]["patch"]["responses"]
    assert "403" in paths["/api/v1/auth/register"]["post"]["responses"]
    assert "404" in paths["/api/v1/rooms/{room_id}"]["get"]["responses"]
    assert "401" in paths["/api/v1/rooms"]["get"]["responses"]
    assert "503" in paths["/api/v1/health"]["get"]["responses"]
    assert (
        "Paginated"
        in paths["/api/v1/rooms"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    )


def test_health_register_and_token_need_no_credentials(schema):
    for path in ("/api/v1/health", "/api/v1/auth/register", "/api/v1/auth/token"):
        operation = next(iter(schema["paths"][path].values()))
        assert operation.get("security") in (None, [], [{}]), path
    assert schema["paths"]["/api/v1/auth/me"]["get"]["security"]


def test_turn_errors_are_documented(schema):
    turn_post = schema["paths"]["/api/v1/sessions/{session_id}/turns"]["post"]
    assert {"201", "402", "409", "422", "502"} <= set(turn_post["responses"])


def test_schema_and_docs_are_served(anon_client):
    response = anon_client.get("/api/schema/")
    assert response.status_code == 200 and "/api/v1/rooms" in yaml.safe_load(response.content)["paths"]
    assert anon_client.get("/api/docs/").status_code == 200


def test_api_root_lists_where_to_start(anon_client):
    body = anon_client.get("/api/v1/").json()
    assert body["rooms"].endswith("/api/v1/rooms") and body["docs"].endswith("/api/docs/")
    assert set(body) >= {"health", "register", "token", "me", "models", "rooms", "schema", "docs"}


def test_api_root_is_in_the_schema(schema):
    assert "get" in schema["paths"]["/api/v1/"]


def test_swagger_ui_needs_no_cdn(anon_client):
    page = anon_client.get("/api/docs/").content.decode()
    assert "cdn.jsdelivr.net" not in page and "swagger-ui" in page


def _operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def test_every_operation_has_a_summary_and_one_tag(schema):
    for path, method, operation in _operations(schema):
        assert operation.get("summary"), (method, path)
        assert len(operation.get("tags", [])) == 1, (method, path, operation.get("tags"))


def test_each_resource_has_its_own_tag(schema):
    tags = {path: operation["tags"][0] for path, method, operation in _operations(schema) if method == "get"}
    assert tags["/api/v1/rooms/{room_id}/sessions"] == "sessions"
    assert tags["/api/v1/sessions/{session_id}/turns"] == "turns"
    assert tags["/api/v1/sessions/{session_id}/summaries"] == "summaries"
    assert tags["/api/v1/sessions/{session_id}/usage"] == "usage"
    assert tags["/api/v1/rooms/{room_id}/agents"] == "agents"


def test_operations_that_need_a_user_document_401_and_those_with_an_id_404(schema):
    for path, method, operation in _operations(schema):
        if operation.get("security") not in (None, [], [{}]):
            assert "401" in operation["responses"], (method, path)
        if "{" in path:
            assert "404" in operation["responses"], (method, path)


def test_turn_agent_lists_are_typed(schema):
    turn = schema["components"]["schemas"]["Turn"]["properties"]
    assert turn["responding_agent_keys"]["type"] == "array"
    assert turn["responding_agent_keys"]["items"]["type"] == "string"
    errors = turn["agent_errors"]["items"]["$ref"].rsplit("/", 1)[-1]
    assert set(schema["components"]["schemas"][errors]["properties"]) == {"agent_key", "code"}


def test_decimal_examples_are_plausible_amounts(schema):
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("format") == "decimal":
                found.append(node.get("example"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema["components"])
    assert found and all(example is not None and Decimal(example) > 0 for example in found)


def test_list_filters_are_documented(schema):
    def params(path):
        return {p["name"] for p in schema["paths"][path]["get"].get("parameters", [])}

    assert {"status", "mode", "created_from", "created_to"} <= params("/api/v1/sessions/{session_id}/turns")
    assert {"purpose", "model", "billable", "created_from", "created_to"} <= params(
        "/api/v1/sessions/{session_id}/usage"
    )
    assert "name" in params("/api/v1/rooms") and "title" in params("/api/v1/rooms/{room_id}/sessions")


def test_redoc_is_served_beside_swagger_without_a_cdn(anon_client):
    page = anon_client.get("/api/redoc/").content.decode()
    assert "redoc" in page.lower() and "cdn.jsdelivr.net" not in page and "/static/" in page
    assert anon_client.get("/api/v1/").json()["redoc"].endswith("/api/redoc/")

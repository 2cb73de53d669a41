"""The browsable API, made to flow for a person at a browser."""

from django.contrib.auth import get_user
from rest_framework.exceptions import ParseError
from rest_framework.renderers import BrowsableAPIRenderer as DrfBrowsableAPIRenderer
from rest_framework.request import override_method
from rest_framework.reverse import reverse
from rest_framework.utils.serializer_helpers import ReturnDict

from pantheon.errors import ApplicationError

API_NAME = "Pantheon API"


class BrowsableAPIRenderer(DrfBrowsableAPIRenderer):
    """Pantheon's name on every page (``ops/templates/pantheon/api.html``), breadcrumbs through the
    parents a view names (``breadcrumb_parents``: the room and session of a turn), help texts
    without the schema's Markdown backticks, a POST-only page (register, token) opened by a browser
    as its form rather than a 405, and:

    - The POST form under a POST's response is built from what the view takes, never from the
      response's serializer (DRF reuses it, so after a 201 the turn form had only read-only fields
      and no inputs): empty after a success, refilled with what was sent (and its errors) after a
      failure, so the next turn is one click away.
      A body the serializer accepts but the service refused (a duplicate key, an unknown model)
      is shown with the refusal as the form's errors, never rendered as a saved object (which
      would hand a dict of input to the output fields: a 500 where a JSON client gets a 4xx).
    - Views that read no credentials (the API root, health, register, token) still show who is
      logged in to the browsable API, instead of offering "Log in" to a logged-in user.
    """

    template = "pantheon/api.html"

    def get_rendered_html_form(self, data, view, method, request):
        if method == "POST" and request.method == "POST":
            response = self.renderer_context["response"]
            failed = response.status_code >= 400
            posted = self._posted_serializer(view, request) if failed else None
            if posted is not None:
                _refusal_as_errors(posted, response.data)
            data = ReturnDict(serializer=posted) if posted is not None else None
        return super().get_rendered_html_form(data, view, method, request)

    def _posted_serializer(self, view, request):
        try:
            payload = request.data
        except ParseError:
            return None
        with override_method(view, request, "POST") as post:
            if hasattr(view, "get_serializer"):
                return view.get_serializer(data=payload)
            if getattr(view, "serializer_class", None):
                return self._get_serializer(view.serializer_class, view, post, data=payload)
        return None

    def render_form_for_serializer(self, serializer):
        for field in serializer.fields.values():
            if field.help_text:
                field.help_text = field.help_text.replace("`", "")
        return super().render_form_for_serializer(serializer)

    def get_breadcrumbs(self, request):
        view = self.renderer_context["view"]
        parents = getattr(view, "breadcrumb_parents", None)
        if parents is None:
            return super().get_breadcrumbs(request)
        root = (API_NAME, reverse("api-root", request=request))
        here = (view.get_view_name(), request.build_absolute_uri(request.path))
        if not request.user.is_authenticated:
            return [root, here]  # an anonymous page (its 401/403) names no one's rooms
        try:
            return [root, *parents(), here]
        except ApplicationError:  # the page is this refusal (a room or session not the user's: 404)
            return [root, here]

    def get_context(self, data, accepted_media_type, renderer_context):
        response, request = renderer_context["response"], renderer_context["request"]
        if response.status_code == 405 and request.method == "GET" and "POST" in response.get("Allow", ""):
            # A person opening the register or token page: the form is the page, not an error.
            response.status_code, response.data = 200, {"detail": "Fill in the form below and POST it."}
            data = response.data
        context = super().get_context(data, accepted_media_type, renderer_context)
        if not context["user"].is_authenticated:
            # DRF replaced the request's user with its own (anonymous) one: ask the session.
            session_user = get_user(renderer_context["request"]._request)
            if session_user.is_authenticated:
                context["user"] = session_user
        return context


def _refusal_as_errors(serializer, body) -> None:
    """Mark a posted serializer invalid with the refusal of its request, so the form is refilled
    from what was sent (``Serializer.data`` of an invalid serializer is its input) and names every
    field the refusal names; a refusal of no field shows above the form."""
    if not serializer.is_valid():
        return  # its own errors are the response's: shown as they are
    body = body if isinstance(body, dict) else {}
    fields = body.get("fields") if isinstance(body.get("fields"), dict) else None
    if fields and all(name in serializer.fields for name in fields):
        serializer._errors = {name: list(messages) for name, messages in fields.items()}
    else:
        serializer._errors = {"non_field_errors": [str(body.get("detail") or "The request was refused.")]}

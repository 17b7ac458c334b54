"""The public HTTP API: the ``/v1`` routes, health, signed storage URLs and metrics, with what they
share: request bodies, response views, the OpenAPI document and its reference page."""

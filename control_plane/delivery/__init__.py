"""Signed image URLs (docs/delivery.md): the URL grammar, format negotiation and rendering
through the job path into the derived-image cache."""

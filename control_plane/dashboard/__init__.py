"""The dashboard people use: its HTML pages and script, sign-up, sign-in and sessions, and the few
JSON routes only it needs. Jobs, specs and deliveries go through the API's own routes."""

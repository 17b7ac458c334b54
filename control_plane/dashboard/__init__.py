"""The dashboard people use: its HTML pages and script, sign-up and sign-in with their rules, and the
few JSON routes only it needs. Jobs, specs and deliveries go through the API's own routes."""

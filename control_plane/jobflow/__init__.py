"""The job flow: what the API's and the dashboard's handlers call to create, start, cancel and
delete jobs and to redeliver their webhooks, so handlers parse, call one flow function, and render."""

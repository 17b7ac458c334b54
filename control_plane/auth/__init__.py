"""Who is asking and how often: API keys and dashboard sessions (with their CSRF token and known
devices) as a principal, rate limits, and the client address behind trusted proxies."""

"""Who is asking and how often: API keys and sessions as a principal, rate limits, and the client
address behind trusted proxies."""

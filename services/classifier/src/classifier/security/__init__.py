"""Who may use the service: API keys (``keys``), their check in the ASGI layer (``auth``),
per-key request rates (``limits``), job ownership and quotas (``ownership``), CORS (``cors``)."""

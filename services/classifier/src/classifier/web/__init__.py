"""The service in a browser: the web page at ``/``, self-hosted ``/docs`` and ``/redoc``, their
assets under ``/static``, and the security headers every response carries."""

"""ASGI entry point: serves the long-polling config watch path (uvicorn).

In embedded mode the same ASGI application serves every route on one port, so no proxy is needed; in
production a reverse proxy sends only the watch path here and everything else to gunicorn.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
application = get_asgi_application()

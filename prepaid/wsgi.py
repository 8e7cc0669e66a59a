"""The WSGI application, served by gunicorn (`gunicorn prepaid.wsgi`, settings in gunicorn.conf.py)."""

import os
from importlib import import_module

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "prepaid.settings")
application = get_wsgi_application()
# Import the URLconf, and with it every view module (stripe, httpx, …), now rather than on each
# worker's first request: with gunicorn's preload_app the workers fork with it all loaded.
import_module(settings.ROOT_URLCONF)

"""A Django WSGI application for views defined in a test module. (A helper, not tests.)

Django's settings are configured once per process, and other test modules (the examples)
may have configured them first, so the URL configuration is switched with
``override_settings`` for the duration of a ``with`` block instead.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from typing import Iterator

from servers import EXAMPLES


@contextlib.contextmanager
def django_app(urlconf: str) -> Iterator[object]:
    """Yield Django's WSGI application routing by the module named ``urlconf`` (a module
    with ``urlpatterns``); ``DEBUG`` off, no middleware, any host."""
    from django.conf import settings

    if not settings.configured:
        # Let the examples' Django project configure them, exactly as it would on its
        # own: test_frameworks imports it later and relies on its own ROOT_URLCONF.
        if str(EXAMPLES) not in sys.path:
            sys.path.insert(0, str(EXAMPLES))
        importlib.import_module("django_app")
    from django.core.wsgi import get_wsgi_application
    from django.test import override_settings

    with override_settings(ROOT_URLCONF=urlconf, ALLOWED_HOSTS=["*"], MIDDLEWARE=[]):
        yield get_wsgi_application()

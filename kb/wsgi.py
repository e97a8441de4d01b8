import os

from django.core.wsgi import get_wsgi_application

from kb.env import stop_on_config_error

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kb.settings")
with stop_on_config_error():
    application = get_wsgi_application()

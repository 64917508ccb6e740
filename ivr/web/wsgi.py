"""What gunicorn serves: ``gunicorn 'ivr.web.wsgi:app'`` (``verifyline console`` does this)."""

from ivr import logs
from ivr.config import Settings
from ivr.web import create_app

# the console's own lines (ivr.*, flask) in the format and at the level of the settings
# (gunicorn's lines: ops.console)
logs.configure(Settings.from_env())
app = create_app()

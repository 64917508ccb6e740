"""What gunicorn serves: ``gunicorn 'ivr.web.wsgi:app'`` (``verifyline console`` does this)."""

from ivr.web import create_app

app = create_app()
